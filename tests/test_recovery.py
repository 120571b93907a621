"""search/recovery.py: trials of dead workers, found by process, failed and retried once."""

from __future__ import annotations

import os
import socket
import subprocess

import optuna
from optuna.trial import TrialState

from search.process import space as process_space
from search.recovery import dead_here, recover, waiting_line
from search.storage import open_storage
from tests.helpers import KILLABLE, QUICK, Forked, in_process, kill_mid_trial, load


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def running_trial(study: optuna.Study, worker: str) -> optuna.trial.FrozenTrial:
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr("worker", worker)
    return study.get_trials()[trial.number]


def test_a_dead_local_worker_is_failed_and_retried_once(tmp_path):
    storage = open_storage(f"journal:{tmp_path / 's.journal'}")
    study = optuna.create_study(storage=storage, study_name="s")
    here = socket.gethostname()
    dead = running_trial(study, f"{here}:{dead_pid()}")
    live = running_trial(study, f"{here}:{os.getppid()}")  # pytest's parent: alive
    remote = running_trial(study, f"elsewhere:{dead_pid()}")
    assert dead_here(dead) and not dead_here(live) and not dead_here(remote)
    assert recover(study) == [dead.number]
    trials = study.get_trials()
    assert trials[dead.number].state == TrialState.FAIL
    assert trials[dead.number].user_attrs["failed"].endswith("died")
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
    assert retry[0].params == dead.params and "failed" not in retry[0].user_attrs
    assert recover(study) == []  # nothing left to recover: the retry is waiting, not running
    line = waiting_line(study, journal=True, grace_seconds=30)
    assert f"trial {remote.number} (elsewhere:" in line and "journal storage cannot tell" in line
    assert "failed after 30 s" in waiting_line(study, journal=False, grace_seconds=30)


def test_pids_are_judged_only_within_their_boot_and_pid_namespace(tmp_path):
    """Containers may share a host name, and a machine reboots: a pid means nothing there."""
    study = optuna.create_study()
    here = socket.gethostname()
    boot, namespace = process_space().split(":")
    trial = study.ask()
    trial.set_user_attr("worker", f"{here}:{os.getpid()}")  # this very pid, alive
    for space, dead in (
        (f"{boot}:{namespace}", True),  # this process runs no trial: a dead one's leftover
        (f"another-boot:{namespace}", True),  # rebooted since: that process is gone
        (f"{boot}:another-namespace", False),  # a container's pid: cannot tell
    ):
        trial.set_user_attr("worker_space", space)
        assert dead_here(study.get_trials()[trial.number]) is dead, space


def test_a_journal_study_recovers_from_a_killed_run(tmp_path):
    """SIGKILL mid-trial on journal storage, then the same command: the killed trial is failed
    and its params run again, and the study reaches its target instead of waiting forever."""
    url = f"journal:{tmp_path / 'study.journal'}"
    args = ["--storage", url, "--trials", "3", *QUICK, *KILLABLE]
    killed = kill_mid_trial(Forked(args, tmp_path), url, "fashion-mnist")
    again = in_process(args, tmp_path)  # the same command again (here: no second start-up)
    assert again.returncode == 0, again.stderr
    trials = load(url, "fashion-mnist").get_trials()
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 3
    assert trials[killed].state.name == "FAIL" and "died" in trials[killed].user_attrs["failed"]
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retried) == 1 and retried[0].params == trials[killed].params
