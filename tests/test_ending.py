"""search.ending: one process ends a study; a live lease blocks the others, a lapsed one or a
finished end does not; the claimant renews while it works and gives the end back if stopped."""

from __future__ import annotations

import time

import optuna
import pytest

from search import ending
from search.storage import FileLock


@pytest.fixture
def study():
    return optuna.create_study(storage=optuna.storages.InMemoryStorage())


def test_a_live_claim_of_another_process_blocks_and_names_it(study, tmp_path):
    lock = FileLock(tmp_path / "lock")
    other = {"owner": "host-b:42", "until": time.time() + 60, "done": False}
    study.set_user_attr(ending.KEY, other)
    line = ending.claim(study, lock)
    assert line is not None and "host-b:42" in line
    assert study.user_attrs[ending.KEY] == other  # untouched


@pytest.mark.parametrize("change", [{"until": 0.0}, {"done": True}])
def test_a_lapsed_or_finished_claim_is_taken_over(study, tmp_path, change):
    study.set_user_attr(ending.KEY, {"owner": "host-b:42", "until": time.time() + 60, **change})
    assert ending.claim(study, FileLock(tmp_path / "lock")) is None
    taken = study.user_attrs[ending.KEY]
    assert taken["owner"] == ending.me() and not taken["done"]
    assert taken["until"] > time.time() + ending.LEASE_SECONDS / 2


def test_the_claimant_renews_then_marks_done(study, tmp_path, monkeypatch):
    monkeypatch.setattr(ending, "RENEW_SECONDS", 0.05)
    assert ending.claim(study, FileLock(tmp_path / "lock")) is None
    first = study.user_attrs[ending.KEY]["until"]
    with ending.leased(study):
        deadline = time.monotonic() + 10
        while study.user_attrs[ending.KEY]["until"] == first:
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.01)
    assert study.user_attrs[ending.KEY]["done"]


def test_an_interrupted_claimant_gives_the_end_back(study, tmp_path):
    assert ending.claim(study, FileLock(tmp_path / "lock")) is None
    with pytest.raises(KeyboardInterrupt), ending.leased(study):
        raise KeyboardInterrupt
    claim = study.user_attrs[ending.KEY]
    assert claim["until"] == 0.0 and not claim["done"]
    assert ending.holder(claim, time.time()) is None
