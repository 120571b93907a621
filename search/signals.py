"""Ctrl-C and SIGTERM held back while the study writes something that must not be cut in half.

Both stop a run by raising ``KeyboardInterrupt`` wherever Python happens to be. Two places
cannot take that: between Optuna creating a trial and the objective naming its worker (the
claim lock, ``search.storage.Lock``), and while Optuna records a trial's end (its
``_run_trial`` assigns the trial's new state inside a ``try`` whose ``finally`` reads it: an
interrupt there raises ``UnboundLocalError`` instead, with a traceback, as a Slurm ``scancel``
in the suite once did). ``HeldSignals`` puts a handler in that notes the signal, and on
``deliver()`` puts the old handlers back and raises what came meanwhile to them.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

HELD = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C and the supervisor's (or a scheduler's) stop


class HeldSignals:
    """``hold()`` starts holding SIGINT and SIGTERM (main thread only: Python delivers signals
    there; elsewhere it does nothing), ``deliver()`` ends it; both may be called twice.
    ``at_once`` says, as a signal comes, whether to deliver it now instead (the claim lock:
    while it is still waited for, nothing is claimed)."""

    def __init__(self, at_once: Callable[[], bool] = lambda: False) -> None:
        self.at_once = at_once
        self._handlers: dict[int, object] = {}  # the handlers this stands in for
        self._pending: list[int] = []

    @property
    def holding(self) -> bool:
        return bool(self._handlers)

    def hold(self) -> None:
        if threading.current_thread() is not threading.main_thread() or self._handlers:
            return
        for signum in HELD:
            if signal.getsignal(signum) not in (signal.SIG_IGN, None):
                self._handlers[signum] = signal.signal(signum, self._note)

    def deliver(self) -> None:
        """Put the handlers back, then raise what came meanwhile (to those handlers)."""
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)
        self._handlers = {}
        pending, self._pending = self._pending, []
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)

    def _note(self, signum: int, frame) -> None:
        self._pending.append(signum)
        if self.at_once():
            self.deliver()


def raise_interrupt(signum: int, frame: object) -> None:
    """A handler that makes SIGTERM what Ctrl-C is: ``KeyboardInterrupt``, so a run stops the
    same way whichever it gets (its trial marked, its MLflow runs ended, its summary printed)."""
    raise KeyboardInterrupt(f"signal {signum}")
