"""Open the Optuna storage that ``--storage`` names (a ``search.storage_url.StorageURL``) and
claim work in it.

- ``sqlite:///optuna.db`` (default), ``postgresql://...``, ``mysql+pymysql://...``: Optuna's
  RDB storage with heartbeats, so a worker killed mid-trial leaves a trial that the next
  ``ask`` (from any worker) marks FAIL and re-queues with the same params.
- ``journal:PATH`` or a path ending in ``.journal``: Optuna's JournalStorage on a file (safe for
  several processes on one machine; Optuna 5 has no heartbeats there).

``claim_lock(storage, study)`` serializes "look at the study, then ask for a trial" across
workers (PostgreSQL advisory lock, MySQL ``GET_LOCK``, or a ``filelock`` lock beside a
file-based storage). Under it a worker can count the finished and running trials and take
exactly the work that is left: N trials in total over K workers, and each grid combination
once. The lock is released as soon as the trial is claimed, never held while training.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from pathlib import Path

import filelock
import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage

from search.reconnect import (
    CALLS,
    RECONNECT_WAIT,
    HeldRDBStorage,
    Reconnect,
    ReconnectingRDBStorage,
    is_disconnect,
)
from search.signals import HeldSignals, held_calls
from search.storage_url import StorageURL

HEARTBEAT_INTERVAL = 10  # seconds between a running trial's heartbeats; a write per 10 s is free
GRACE_FACTOR = 3  # a trial is stale after 3 missed beats: tolerant of a busy CPU


# Optuna's journal whose every call is whole (``search.signals.held_calls``): an interrupt in
# the middle of a write could leave the journal's lock file behind, and every worker waiting.
HeldJournalStorage = held_calls(JournalStorage, CALLS, __name__)


def open_storage(
    url: StorageURL | str,
    heartbeat_interval: int = HEARTBEAT_INTERVAL,
    reconnect_wait: float = RECONNECT_WAIT,
) -> optuna.storages.BaseStorage:
    """Open (and create if needed) the storage; raise ``StorageError`` on any failure. On a
    database server, a dropped connection is retried for ``reconnect_wait`` seconds
    (``search.reconnect``)."""
    url = StorageURL.parse(url) if isinstance(url, str) else url
    try:
        if url.path is not None and not url.path.resolve().parent.is_dir():
            raise OSError(f"directory {url.path.parent} does not exist")
        if url.journal:
            return HeldJournalStorage(JournalFileBackend(str(url.path)))
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _rdb(url, heartbeat_interval, reconnect_wait)
    except Exception as exc:  # drivers raise anything; the user gets one line
        raise url.error(exc) from None


def _rdb(url: StorageURL, heartbeat_interval: int, wait: float) -> RDBStorage:
    """Processes started together on a fresh database would all create (or migrate) Optuna's
    tables at once: SQLite answers the losers "UNIQUE constraint failed: alembic_version",
    PostgreSQL "duplicate key ... pg_type". They take turns, only while the store opens."""
    if url.path is not None:
        with schema_lock(url.path):
            return _rdb_storage(url.text, heartbeat_interval, None)
    from sqlalchemy import create_engine

    engine = create_engine(url.text)
    try:
        with SqlLock(engine, "fashion-search:schema"):
            return _rdb_storage(url.text, heartbeat_interval, Reconnect(url.text, wait))
    finally:
        engine.dispose()


# A worker frozen (SIGSTOP, a suspended VM) in the middle of one of Optuna's transactions holds
# its trial's row locks: the worker that comes to fail that trial after the heartbeat grace
# then waits on them for ever, under the claim lock, and the whole study stops (seen in the
# frozen-host test). Optuna's transactions last milliseconds; PostgreSQL ends a session idle
# inside one for this long, which releases its locks.
IDLE_IN_TRANSACTION_MS = 20_000


def _engine_kwargs(url: str, sqlite: bool) -> dict | None:
    if sqlite:  # wait for a lock instead of failing at once
        return {"connect_args": {"timeout": 60}}
    # A server that restarted left the pool's connections dead: ping one before using it.
    kwargs: dict = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        timeout = f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
        kwargs["connect_args"] = {"options": timeout}
    return kwargs


def _rdb_storage(url: str, heartbeat_interval: int, reconnect: Reconnect | None) -> RDBStorage:
    """SQLite (``reconnect`` None) has no server to lose; a server's storage reconnects."""
    sqlite = reconnect is None
    extra = {} if sqlite else {"reconnect": reconnect}
    storage = (HeldRDBStorage if sqlite else ReconnectingRDBStorage)(
        url,
        **extra,
        engine_kwargs=_engine_kwargs(url, sqlite),
        heartbeat_interval=heartbeat_interval,
        grace_period=heartbeat_interval * GRACE_FACTOR,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
    )
    if sqlite:
        # WAL lets readers (other workers, optuna-dashboard) work while one process writes;
        # the mode is stored in the file, so setting it once per open is enough.
        with storage.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    return storage


def schema_lock(database: Path) -> FileLock:
    """The lock beside an SQLite file that serializes creating or migrating its schema (used
    for Optuna's storage and MLflow's ``sqlite:///`` store alike)."""
    return FileLock(database.with_name(f"{database.name}.schema.lock"))


class Lock:
    """``with lock:`` takes it, leaving the block gives it back, and ``release()`` may give it
    back earlier (as the objective does once its trial is claimed); releasing twice is fine.

    While it is held, SIGINT and SIGTERM wait (main thread): Optuna creates a trial RUNNING
    under the claim lock and the objective names its worker just before giving the lock back,
    so a signal in between would leave a RUNNING trial that no worker owns and no recovery can
    judge (the suite once saw it). The signal is delivered as the lock goes."""

    def __init__(self) -> None:
        self.held = False
        self.signals = HeldSignals(at_once=lambda: not self.held)  # waiting: nothing claimed

    def __enter__(self) -> Lock:
        self.signals.hold()
        try:
            self._acquire()
        except BaseException:
            self.signals.deliver()
            raise
        self.held = True
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        if self.held:
            self.held = False
            self._release()
        self.signals.deliver()

    def _acquire(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError


class FileLock(Lock):
    """An exclusive lock on a file beside the storage (``filelock``: portable, waits)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._lock = filelock.FileLock(str(path), is_singleton=False)

    def _acquire(self) -> None:
        self._lock.acquire()

    def _release(self) -> None:
        self._lock.release()


class SqlLock(Lock):
    """A database-wide named lock held on one dedicated connection: PostgreSQL's advisory
    lock, MySQL's ``GET_LOCK``. With the storage's ``Reconnect`` policy, taking it waits out a
    server that blinks; a lock whose connection died was released by the server with it."""

    def __init__(self, engine, key: str, reconnect: Reconnect | None = None) -> None:
        super().__init__()
        self.engine, self.key, self.conn, self.reconnect = engine, key, None, reconnect
        self.postgres = engine.dialect.name == "postgresql"
        self.number = int(hashlib.sha1(key.encode()).hexdigest()[:15], 16)

    def _acquire(self) -> None:
        if self.reconnect is None:
            self._take()
        else:
            self.reconnect.call("claim lock", self._take)

    def _take(self) -> None:
        from sqlalchemy import text

        self._drop_connection()
        # Autocommit: the session-level lock outlives transactions, and the connection is never
        # "idle in transaction" (which PostgreSQL ends, see IDLE_IN_TRANSACTION_MS).
        self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if self.postgres:
            self.conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.number})
        else:
            # A day is "until granted" without relying on how a server reads -1.
            self.conn.execute(text("SELECT GET_LOCK(:k, 86400)"), {"k": self.key[:64]})

    def _release(self) -> None:
        from sqlalchemy import text

        try:
            if self.postgres:
                self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.number})
            else:
                self.conn.execute(text("SELECT RELEASE_LOCK(:k)"), {"k": self.key[:64]})
        except Exception as exc:
            if not is_disconnect(exc):
                raise
        finally:
            self._drop_connection()

    def _drop_connection(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            with contextlib.suppress(Exception):  # a dead connection cannot even close
                conn.close()


def claim_lock(
    storage: optuna.storages.BaseStorage, url: StorageURL | str, study_name: str
) -> Lock:
    """The study's claim lock: on the database for PostgreSQL/MySQL, else a file beside it."""
    url = StorageURL.parse(url) if isinstance(url, str) else url
    path = url.beside(study_name)
    if path is None:
        key = f"fashion-search:{study_name}"
        return SqlLock(storage.engine, key, getattr(storage, "reconnect", None))
    return FileLock(path)
