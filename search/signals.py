"""Ctrl-C and SIGTERM held back while the study writes something that must not be cut in half.

Both stop a run by raising ``KeyboardInterrupt`` wherever Python happens to be. Two places
cannot take that: between Optuna creating a trial and the objective naming its worker (the
claim lock, ``search.storage.Lock``), and while Optuna records a trial's end (its
``_run_trial`` assigns the trial's new state inside a ``try`` whose ``finally`` reads it: an
interrupt there raises ``UnboundLocalError`` instead, with a traceback, as a Slurm ``scancel``
in the suite once did). ``HeldSignals`` puts a handler in that notes the signal, and on
``deliver()`` puts the old handlers back and raises what came meanwhile to them.

A third place is every storage call (``held_calls``): an interrupt inside SQLAlchemy leaves
the thread's session "in progress" for good, and every later call fails, Optuna's record of the
trial's end included ("Should not reach.", exit 1 instead of 130: the suite saw it); inside a
journal write it could leave the journal's lock file behind. A call lasts milliseconds; the
signal is delivered as it returns.

A fourth place cannot take it either, and can be anywhere: a finalizer, which the garbage
collector runs wherever the main thread is. ``interrupts()`` sends an interrupt dropped there
again, so it lands in ordinary code.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator

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

    def drop(self) -> None:
        """Put the handlers back and forget what came meanwhile: for a run already stopping for
        the same reason (a supervisor's watch sends SIGTERM again every few seconds)."""
        self._pending = []
        self.deliver()

    def _note(self, signum: int, frame) -> None:
        self._pending.append(signum)
        if self.at_once():
            self.deliver()


def held_calls(cls: type, names: Iterable[str], module: str) -> type:
    """A subclass of ``cls``, named ``Held<cls>`` in ``module`` (where it is defined), whose
    methods ``names`` (those it has) run whole: SIGINT and SIGTERM that come during one are
    delivered as it returns or raises. Calls from inside one nest; outside the main thread
    nothing is held (Python delivers signals there only)."""
    held = {name: _held(getattr(cls, name)) for name in names if hasattr(cls, name)}
    return type(f"Held{cls.__name__}", (cls,), {"__module__": module, **held})


def _held(method: Callable) -> Callable:
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        signals = HeldSignals()
        signals.hold()
        try:
            return method(self, *args, **kwargs)
        finally:
            signals.deliver()

    return call


# How long a dropped interrupt waits before it is sent again: long enough for the finalizer that
# dropped it to have returned (it runs in the garbage collector, microseconds), short enough
# that a person does not see the run go on.
RESEND_DELAY = 0.05


class Interrupted(KeyboardInterrupt):
    """``KeyboardInterrupt`` from a signal this project handles, naming it (to send it again)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def raise_interrupt(signum: int, frame: object) -> None:
    """A handler that makes SIGTERM what Ctrl-C is: ``KeyboardInterrupt``, so a run stops the
    same way whichever it gets (its trial marked, its MLflow runs ended, its summary printed)."""
    raise Interrupted(signum)


@contextlib.contextmanager
def interrupts() -> Iterator[None]:
    """For the block: SIGTERM raises ``KeyboardInterrupt`` as Ctrl-C does, and an interrupt that
    Python drops is sent again.

    Python runs a signal's handler wherever the main thread is, a finalizer included (a weakref
    callback or ``__del__`` run by the garbage collector), and no exception can leave a
    finalizer: it is printed as "Exception ignored" and the run goes on as if no signal had
    come (the suite saw a worker train on after its supervisor's SIGTERM, 4 runs in 25 under
    load). Python hands such an exception to ``sys.unraisablehook``; ours sends the signal
    again, from a timer thread, so that it lands in ordinary code."""
    previous_handler = signal.signal(signal.SIGTERM, raise_interrupt)
    previous_hook = sys.unraisablehook
    timers: list[threading.Timer] = []

    def resend(unraisable) -> None:
        if unraisable.exc_type is None or not issubclass(unraisable.exc_type, KeyboardInterrupt):
            previous_hook(unraisable)
            return
        signum = getattr(unraisable.exc_value, "signum", signal.SIGINT)
        main = threading.main_thread().ident
        timer = threading.Timer(RESEND_DELAY, signal.pthread_kill, (main, signum))
        timer.daemon = True  # never keeps an ending process alive
        timers.append(timer)
        timer.start()

    sys.unraisablehook = resend
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for timer in timers:  # the block is over: a resend now would hit the summary's print
            timer.cancel()
            timer.join()
        signal.signal(signal.SIGTERM, previous_handler)
