"""search/storage.py: URLs, masking, opening errors, the claim lock."""

from __future__ import annotations

import filelock
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


def test_lock_files_use_a_safe_form_of_the_study_name(tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    lock = claim_lock(open_storage(url), url, "../../x y")
    assert lock.path.parent == tmp_path and "/" not in lock.path.name.removesuffix(".lock")
