"""search.signals: SIGINT and SIGTERM held back, then delivered once."""

from __future__ import annotations

import os
import signal
import threading

from search.signals import HeldSignals


def test_held_signals_come_once_on_delivery_to_the_handler_they_stood_in_for():
    seen: list[str] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append("delivered"))
    try:
        held = HeldSignals()
        held.hold()
        held.hold()  # twice is once
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # the same signal twice: one stop
        seen.append("held")
        held.deliver()
        seen.append("after")
        held.deliver()  # nothing left
        os.kill(os.getpid(), signal.SIGTERM)  # handler back: at once
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == ["held", "delivered", "after", "delivered"]
    assert not held.holding


def test_outside_the_main_thread_nothing_is_held():
    """Python runs handlers in the main thread only; a worker thread cannot swap them, and
    must not try (``signal.signal`` there raises ValueError): nothing held, nothing raised."""
    held, raised = HeldSignals(), []

    def hold() -> None:
        try:
            held.hold()
        except Exception as exc:  # what the thread would otherwise die of, unseen
            raised.append(exc)

    thread = threading.Thread(target=hold)
    thread.start()
    thread.join()
    assert raised == [] and not held.holding
