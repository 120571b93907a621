"""search/storage.py: URLs, masking, opening errors, the claim lock."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

import filelock
import optuna
import pytest

from search.storage import claim_lock, open_storage
from search.storage_url import StorageError
from search.urls import mask_url


def test_mask_url():
    assert mask_url("postgresql://bob:s3cret@db:5432/x") == "postgresql://bob:***@db:5432/x"
    assert mask_url("sqlite:///optuna.db") == "sqlite:///optuna.db"


def test_unreachable_postgres_is_one_masked_line():
    url = "postgresql://bob:hunter2@127.0.0.1:1/nowhere"
    with pytest.raises(StorageError) as info:
        open_storage(url)
    message = str(info.value)
    assert "hunter2" not in message and "bob:***@" in message and "\n" not in message


@pytest.mark.parametrize("url", ["nonsense", "sqlite:////no/such/dir/x.db", "journal:/no/dir/j"])
def test_bad_urls(url):
    with pytest.raises(StorageError, match="cannot open"):
        open_storage(url)


def test_journal_storage(tmp_path):
    storage = open_storage(f"journal:{tmp_path / 's.journal'}")
    assert isinstance(storage, optuna.storages.journal.JournalStorage)


def test_file_lock_is_exclusive_and_may_be_released_early(tmp_path):
    """Two holders of one study's lock exclude each other; the objective's early release frees
    it at once, and leaving the block after that is harmless."""
    url = f"sqlite:///{tmp_path / 'o.db'}"
    lock = claim_lock(open_storage(url), url, "s")
    other = filelock.FileLock(str(lock.path))
    with lock:
        with pytest.raises(filelock.Timeout):
            other.acquire(timeout=0)
        lock.release()  # early release, as the objective does
        other.acquire(timeout=0)  # now free
        other.release()
    assert lock.path.name == "o.db.s.lock"


@pytest.mark.parametrize("early", [True, False])
def test_a_signal_waits_until_the_lock_is_given_back(tmp_path, early):
    """SIGTERM while the claim lock is held (a trial created, its worker not yet named) is
    delivered once the lock goes, by the objective's early release or at the block's end."""
    url = f"sqlite:///{tmp_path / 'o.db'}"
    lock = claim_lock(open_storage(url), url, "s")
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append("delivered"))
    try:
        with lock:
            os.kill(os.getpid(), signal.SIGTERM)
            seen.append("claimed")  # the handler would have run before this line
            if early:
                lock.release()
                seen.append("training")
        seen.append("after")
        assert not lock.signals.holding
        os.kill(os.getpid(), signal.SIGTERM)  # not held: at once
        seen.append("end")
    finally:
        signal.signal(signal.SIGTERM, previous)
    during = ["claimed", "delivered", "training"] if early else ["claimed", "delivered"]
    assert seen == [*during, "after", "delivered", "end"]


def test_a_signal_while_waiting_for_the_lock_is_not_held_back(tmp_path):
    """Nothing is claimed before the lock is had: Ctrl-C while waiting stops the wait."""
    url = f"sqlite:///{tmp_path / 'o.db'}"
    lock = claim_lock(open_storage(url), url, "s")
    taken, done = threading.Event(), threading.Event()

    def another_worker() -> None:  # holds the lock until the test ends, or for a minute
        with filelock.FileLock(str(lock.path), is_singleton=False):  # (a lost signal fails)
            taken.set()
            done.wait(timeout=60)

    holder = threading.Thread(target=another_worker)
    holder.start()
    taken.wait()
    # Ctrl-C as a terminal delivers it: a test run started in the background by a shell
    # without job control inherits SIGINT ignored (and then this waited for the holder).
    interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous = signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)  # Ctrl-C, while the lock is waited for
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            with lock:
                pass
        # At once: a Ctrl-C held back until the holder lets go (a minute) is not one that
        # stops the wait, though it comes in the end.
        assert time.monotonic() - start < 10
        assert not lock.held and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        signal.signal(signal.SIGINT, interrupt)
        done.set()
        holder.join()


def test_lock_files_use_a_safe_form_of_the_study_name(tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    lock = claim_lock(open_storage(url), url, "../../x y")
    assert lock.path.parent == tmp_path and "/" not in lock.path.name.removesuffix(".lock")


# Where a storage call's own work is done: the database layer, Optuna's RDB and journal stores
# (not Optuna's cache in front of them, nor ``Trial.report``, which may be cut before the call).
STORAGE_CODE = ("/sqlalchemy/", "/optuna/storages/_rdb/", "/optuna/storages/journal/")


class InterruptAtLine:
    """As a ``sys.settrace`` tracer: Ctrl-C (SIGINT to this process) at the ``n``-th line
    Python runs in the storage's code (``STORAGE_CODE``) inside the block."""

    def __init__(self, n: int) -> None:
        self.n, self.seen, self.sent = n, 0, False

    def __call__(self, frame, event, arg):
        if event == "line" and any(p in frame.f_code.co_filename for p in STORAGE_CODE):
            self.seen += 1
            if self.seen == self.n and not self.sent:
                self.sent = True
                signal.raise_signal(signal.SIGINT)
        return self

    def __enter__(self) -> InterruptAtLine:
        sys.settrace(self)
        return self

    def __exit__(self, *exc) -> None:
        sys.settrace(None)


# Lines of the storage's code a test interrupts at, spread over the call: an SQLite write runs
# some thousands, at ~3 µs each when traced.
TRIED_LINES = 150


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_ctrl_c_at_any_line_of_a_storage_write_comes_after_it_whole(tmp_path, kind):
    """Ctrl-C inside a storage call used to cut it in half: SQLAlchemy's session was left
    "in progress" and every later call in the thread failed, Optuna's record of the trial's
    end included (it then raised "Should not reach." and the run exited 1, not 130). Here
    Ctrl-C lands at lines spread over the storage's code under ``trial.report``, one per call:
    each time the value is written, the interrupt comes as the call returns, and the storage
    goes on working."""
    url = f"sqlite:///{tmp_path / 'o.db'}" if kind == "sqlite" else f"journal:{tmp_path / 'j'}"
    study = optuna.create_study(storage=open_storage(url))
    trial = study.ask()
    trial.report(0.5, 0)  # the first write runs more: SQLAlchemy compiles its statements
    with InterruptAtLine(0) as counted:  # no interrupt: how many lines a write runs
        trial.report(0.5, 1)
    lines = range(1, counted.seen + 1, max(1, counted.seen // TRIED_LINES))
    interrupt = signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal's
    sent = 0
    try:
        for step, n in enumerate(lines, start=2):
            with contextlib.suppress(KeyboardInterrupt), InterruptAtLine(n) as at:
                trial.report(0.5, step)
                assert not at.sent, f"the interrupt at line {n} did not stop the run"
            written = study._storage.get_trial(trial._trial_id).intermediate_values
            assert written.get(step) == 0.5, f"an interrupt at line {n} lost the write"
            sent += at.sent
    finally:
        signal.signal(signal.SIGINT, interrupt)
    assert sent >= min(counted.seen, TRIED_LINES) * 0.9  # interrupted, not run past
    study.tell(trial, 1.0)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
