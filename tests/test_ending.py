"""search.ending: one process ends a study; a live lease blocks the others, a lapsed one, a
finished end or a gone holder of this machine does not (and taking over an unfinished end
says from whom); the claimant renews while it works and gives the end back if stopped."""

from __future__ import annotations

import socket
import subprocess
import time

import optuna
import pytest

from search import ending, process
from search.storage import FileLock


@pytest.fixture
def study():
    return optuna.create_study(storage=optuna.storages.InMemoryStorage())


def test_a_live_claim_of_another_process_blocks_and_names_it(study, tmp_path):
    lock = FileLock(tmp_path / "lock")
    other = {"owner": "host-b:42", "until": time.time() + 60, "done": False}
    study.set_user_attr(ending.KEY, other)
    claimed = ending.claim(study, lock)
    assert "host-b:42" in claimed.elsewhere and not claimed.taken_from
    assert study.user_attrs[ending.KEY] == other  # untouched


@pytest.mark.parametrize(
    ("change", "taken_from"),
    [({"until": 0.0}, ""), ({"done": True}, ""), ({"until": 1.0}, "host-b:42")],
    ids=["given back", "done", "lapsed"],
)
def test_a_lapsed_or_finished_claim_is_taken_over(study, tmp_path, change, taken_from):
    study.set_user_attr(ending.KEY, {"owner": "host-b:42", "until": time.time() + 60, **change})
    claimed = ending.claim(study, FileLock(tmp_path / "lock"))
    assert claimed == ending.Claimed(taken_from=taken_from)
    taken = study.user_attrs[ending.KEY]
    assert taken["owner"] == process.me() and not taken["done"]
    assert taken["until"] > time.time() + ending.LEASE_SECONDS / 2
    assert (taken["space"], taken["started"]) == (process.space(), process.started())


def test_a_gone_holder_of_this_machine_is_not_waited_for(study, tmp_path):
    """Its lease still runs, but its process is dead: the end is taken at once, from it."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = {**process.record(), "owner": f"{socket.gethostname()}:{gone.pid}"}
    study.set_user_attr(ending.KEY, {**dead, "until": time.time() + 60, "done": False})
    claimed = ending.claim(study, FileLock(tmp_path / "lock"))
    assert claimed.taken_from == dead["owner"] and not claimed.elsewhere


def test_a_live_holder_of_this_machine_with_a_reused_pid_is_told_apart(study, tmp_path):
    """A holder whose pid now belongs to another process (another start time) is gone; the
    process itself, alive, holds the end."""
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live = {"owner": f"{socket.gethostname()}:{sleeper.pid}", "space": process.space()}
        live |= {"started": process.started(sleeper.pid), "until": time.time() + 60}
        study.set_user_attr(ending.KEY, live)
        lock = FileLock(tmp_path / "lock")
        assert live["owner"] in ending.claim(study, lock).elsewhere
        study.set_user_attr(ending.KEY, {**live, "started": live["started"] - 1})
        assert ending.claim(study, lock).taken_from == live["owner"]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_claimant_renews_then_marks_done(study, tmp_path, monkeypatch):
    monkeypatch.setattr(ending, "RENEW_SECONDS", 0.05)
    assert ending.claim(study, FileLock(tmp_path / "lock")) == ending.Claimed()
    first = study.user_attrs[ending.KEY]["until"]
    with ending.leased(study):
        deadline = time.monotonic() + 10
        while study.user_attrs[ending.KEY]["until"] == first:
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.01)
    assert study.user_attrs[ending.KEY]["done"]


def test_an_interrupted_claimant_gives_the_end_back(study, tmp_path):
    assert ending.claim(study, FileLock(tmp_path / "lock")) == ending.Claimed()
    with pytest.raises(KeyboardInterrupt), ending.leased(study):
        raise KeyboardInterrupt
    claim = study.user_attrs[ending.KEY]
    assert claim["until"] == 0.0 and not claim["done"]
    assert ending.holder(claim, time.time()) is None
