"""search.signals: SIGINT and SIGTERM held back, then delivered once."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

import pytest

from search.signals import HeldSignals, interrupts, raise_interrupt


@contextlib.contextmanager
def on_sigterm(seen: list[str]) -> Iterator[None]:
    """For the block, SIGTERM appends "delivered" to ``seen``; the handler before is put back."""
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append("delivered"))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class SignalledInFinalizer:
    """Collected at once when not kept: its finalizer raises SIGTERM, so the handler runs
    inside ``__del__``, where Python drops what it raises."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGTERM)


def test_held_signals_come_once_on_delivery_to_the_handler_they_stood_in_for():
    seen: list[str] = []
    with on_sigterm(seen):
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


def test_dropped_signals_are_forgotten_and_the_handler_is_back():
    """``drop()``: a run already stopping ignores what came meanwhile, then hears the next."""
    seen: list[str] = []
    with on_sigterm(seen):
        held = HeldSignals()
        held.hold()
        os.kill(os.getpid(), signal.SIGTERM)
        held.drop()
        seen.append("dropped")
        os.kill(os.getpid(), signal.SIGTERM)  # handler back: at once
    assert seen == ["dropped", "delivered"] and not held.holding


def test_an_interrupt_python_drops_in_a_finalizer_is_raised_again():
    """A signal whose handler runs inside a finalizer raises there, and Python drops what a
    finalizer raises ("Exception ignored"): the run would go on. ``interrupts()`` sends it
    again, and it stops the block. (Without the resend the wait below runs out: no raise.)"""
    with pytest.raises(KeyboardInterrupt) as raised:
        with interrupts():
            SignalledInFinalizer()  # collected at once: SIGTERM lands in its finalizer
            threading.Event().wait(timeout=30)  # a signal's handler interrupts the wait
    assert raised.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is not raise_interrupt  # put back as it was


def test_other_exceptions_in_finalizers_go_to_the_hook_before():
    seen = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: seen.append(unraisable.exc_type)
    try:

        class Finalized:
            def __del__(self) -> None:
                raise ValueError("in a finalizer")

        with interrupts():
            Finalized()
    finally:
        sys.unraisablehook = previous
    assert seen == [ValueError]


def test_a_resend_still_pending_when_the_block_ends_is_cancelled():
    """The block ended before a dropped interrupt was sent again: the resend would land in
    whatever runs next (the summary's print), under the handler put back; it is cancelled."""
    seen: list[str] = []
    with on_sigterm(seen):
        with interrupts():
            SignalledInFinalizer()  # dropped in its finalizer; the resend waits RESEND_DELAY
        pending = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    assert pending == [] and seen == []
