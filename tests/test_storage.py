"""search/storage.py: URLs, masking, opening errors, the claim lock."""

from __future__ import annotations

import pytest

from search.storage import StorageError, claim_lock, open_storage
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
    assert type(storage).__name__ == "JournalStorage"


def test_file_lock_is_exclusive(tmp_path):
    """Two holders of one study's lock exclude each other (fcntl locks are per open file)."""
    import fcntl

    url = f"sqlite:///{tmp_path / 'o.db'}"
    storage = open_storage(url)
    lock = claim_lock(storage, url, "s")
    with lock:
        probe = open(lock.impl.path, "a")  # noqa: SIM115
        with pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.release()  # early release, as the objective does
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # now free
        probe.close()
