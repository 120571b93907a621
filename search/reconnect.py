"""A storage server that blinks costs a retry, not the study.

A PostgreSQL or MariaDB server that restarts (an upgrade, a failover) or a connection that
drops under a worker used to end it with a traceback at its next ``trial.report``, and its
trial FAIL. Here every call Optuna makes to a database server is retried while the failure is
the kind a reconnect cures (the server closed the connection, refused it, is shutting down,
or the network dropped it), for at most ``--reconnect-wait`` seconds, with a line on the
progress bar while it waits. The engine pings a pooled connection before using it, so after a
restart the dead connections are replaced instead of failing one call each.

Past the wait the storage is *lost*: ``StorageLost`` (one line, the URL's password masked) and
every later call fails at once, so nothing waits twice; ``search.run`` prints that line and
exits 1. The trial this worker was running stays RUNNING with no more heartbeats, and is
failed and retried like a crashed worker's (by this machine's next worker at once, by another
machine's after the heartbeat grace).

File-based storages (SQLite, journal) have no server to lose and are not wrapped. Every
storage is held (``HeldRDBStorage``, ``search.signals.held_calls``): an interrupt waits for the
call in progress, so it never cuts one in half. Here each attempt is held, not the wait between
them: Ctrl-C still stops a worker waiting for its server.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from search.signals import held_calls
from search.urls import first_line, mask_url

# A server restart takes seconds and a managed database's failover up to a minute; an outage
# longer than that is not a blink, and the worker's trial is better retried by others.
RECONNECT_WAIT = 60.0
FIRST_DELAY, MAX_DELAY = 0.5, 5.0  # seconds between attempts: doubling, then every 5 s

# What Optuna's RDBStorage and its cache (optuna.storages._CachedStorage) call on the database:
# the public storage API, the private ones the cache uses, and the heartbeat's.
CALLS = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_all_studies",
    "create_new_trial",
    "_create_new_trial",
    "set_trial_param",
    "_set_trial_param",
    "get_trial_param",
    "set_trial_state_values",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number",
    "get_trial",
    "get_all_trials",
    "_get_trials",
    "get_best_trial",
    "_get_best_trial_id",
    "set_metric_names",
    "record_heartbeat",
    "_get_stale_trial_ids",
)


# Optuna's RDBStorage whose every call (CALLS) is whole: a signal waits for its end. A file
# database's storage is one; a server's is the base of ``ReconnectingRDBStorage``.
# ``remove_session`` too: Optuna closes the thread's session with it as ``optimize`` ends.
HeldRDBStorage = held_calls(RDBStorage, (*CALLS, "remove_session"), __name__)


class StorageLost(RuntimeError):
    """The storage server stayed unreachable past ``--reconnect-wait``: one line, masked."""


def _chain(exc: BaseException | None, depth: int = 10):
    """``exc`` and what it was raised from or while handling, nearest first."""
    while exc is not None and depth > 0:
        yield exc
        exc, depth = exc.__cause__ or exc.__context__, depth - 1


def disconnect_of(exc: BaseException) -> BaseException | None:
    """The lost or refused connection ``exc`` is (or was raised from), which a reconnect cures,
    as the driver said it; ``None`` for bad data, a constraint or a programming error."""
    from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

    for seen in _chain(exc, 5):  # Optuna wraps SQLAlchemy's error, which wraps the driver's
        if isinstance(seen, DisconnectionError | OperationalError | InterfaceError) or (
            isinstance(seen, DBAPIError) and seen.connection_invalidated
        ):
            return getattr(seen, "orig", None) or seen
    return None


def is_disconnect(exc: BaseException) -> bool:
    return disconnect_of(exc) is not None


def lost_in(exc: BaseException) -> StorageLost | None:
    """The ``StorageLost`` that ``exc`` is or was raised while handling: Optuna's clean-up of
    a trial reads the lost storage again and fails with an error of its own
    (``UnboundLocalError`` in ``optuna.study._optimize._run_trial``, Optuna 5.0)."""
    return next((e for e in _chain(exc) if isinstance(e, StorageLost)), None)


def stderr_notice(kind: str, line: str) -> None:
    """Without a progress bar: the outage's first line and its end, past ``--quiet``'s held
    stderr (a worker that waits a minute says why)."""
    if kind in ("start", "back"):
        print(line, file=sys.__stderr__, flush=True)


class Reconnect:
    """The retry policy of one storage: how long to wait, whom to tell, whether it is lost."""

    def __init__(self, url: str, wait: float = RECONNECT_WAIT) -> None:
        if not wait > 0:
            raise ValueError(f"the reconnect wait must be positive, got {wait=}")
        self.url, self.wait = mask_url(url), wait  # the URL as shown: password masked
        self._raw = url  # only to scrub a driver's message of it
        self.lost = ""  # the one line, once the wait has run out
        # kind ("start", "wait", "back"), line: the progress bar replaces it (search.run)
        self.notify: Callable[[str, str], None] = stderr_notice
        self._inside = threading.local()  # a wrapped call made from inside another
        self._state = threading.Lock()  # guards _since: the trial's thread and its heartbeat's
        self._since: float | None = None  # when the current outage began

    def call(self, name: str, fn: Callable, *args, **kwargs):
        if self.lost:
            raise StorageLost(self.lost)
        if getattr(self._inside, "active", False):
            return fn(*args, **kwargs)
        self._inside.active = True
        try:
            return self._retrying(name, fn, args, kwargs)
        finally:
            self._inside.active = False

    def _retrying(self, name: str, fn: Callable, args, kwargs):
        delay, attempt = FIRST_DELAY, 0
        while True:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                if attempt and _already_done(name, exc, fn, args, kwargs):
                    return True  # the first try's commit landed, only its answer was lost
                cause = disconnect_of(exc)
                if cause is None:
                    raise
                waited = self._down(cause)
                if waited >= self.wait or self.lost:
                    raise self._give_up(waited, cause) from None
                time.sleep(min(delay, self.wait - waited))
                delay, attempt = min(delay * 2, MAX_DELAY), attempt + 1
                continue
            if attempt:
                self._up()
            return result

    def _down(self, cause: BaseException) -> float:
        """Seconds the storage has been down; the outage is told once, however many threads
        (the trial's, its heartbeat's) meet it."""
        error = first_line(cause, self._raw)
        with self._state:
            now = time.monotonic()
            if self._since is None:
                self._since = now
                line = f"storage {self.url} unreachable ({error}); retrying for up to "
                self.notify("start", f"{line}{self.wait:g} s")
            else:
                waited = f"{now - self._since:.0f} s of {self.wait:g}"
                self.notify("wait", f"storage {self.url} unreachable for {waited}: {error}")
            return now - self._since

    def _up(self) -> None:
        with self._state:
            if self._since is not None:
                back = f"reachable again after {time.monotonic() - self._since:.0f} s"
                self.notify("back", f"storage {self.url}: {back}; going on")
                self._since = None

    def _give_up(self, waited: float, exc: BaseException) -> StorageLost:
        if not self.lost:
            self.lost = (
                f"--storage {self.url}: unreachable for {waited:.0f} s (--reconnect-wait "
                f"{self.wait:g}): {first_line(exc, self._raw)}; this worker stopped, its "
                "running trial is retried by the study's next worker"
            )
        return StorageLost(self.lost)


def _already_done(name: str, exc: BaseException, fn, args, kwargs) -> bool:
    """A retried ``set_trial_state_values`` whose first try committed before the connection
    went: the trial is already in the state asked for."""
    if name != "set_trial_state_values" or not isinstance(exc, UpdateFinishedTrialError):
        return False
    storage, trial_id = fn.__self__, args[0] if args else kwargs["trial_id"]
    state = args[1] if len(args) > 1 else kwargs.get("state")
    return isinstance(state, TrialState) and storage.get_trial(trial_id).state == state


def _wrapped(name: str):
    method = getattr(HeldRDBStorage, name)  # each attempt whole; the wait between them is not

    def call(self, *args, **kwargs):
        bound = method.__get__(self, type(self))
        if name == "record_heartbeat":  # a thread of its own: a traceback there helps nobody
            try:
                return self.reconnect.call(name, bound, *args, **kwargs)
            except StorageLost:
                return None
        return self.reconnect.call(name, bound, *args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


def _init(self, url: str, reconnect: Reconnect, **kwargs) -> None:
    self.reconnect = reconnect  # before RDBStorage's own set-up, which may read the database
    HeldRDBStorage.__init__(self, url, **kwargs)


# Optuna's RDBStorage with every database call (CALLS) going through a ``Reconnect`` policy.
# It is an RDBStorage: Optuna caches it and runs its heartbeats as before.
ReconnectingRDBStorage = type(
    "ReconnectingRDBStorage",
    (HeldRDBStorage,),
    {
        "__init__": _init,
        "__module__": __name__,
        **{name: _wrapped(name) for name in CALLS if hasattr(RDBStorage, name)},
    },
)
