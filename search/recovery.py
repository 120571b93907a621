"""Trials left RUNNING by a dead worker: found, failed and retried once, on every storage.

Each trial's first act is to record ``worker`` (``host:pid``, see ``search.objective``). A
RUNNING trial whose worker ran on this machine and whose process is gone is dead for certain:
it is failed (reason in its ``failed`` user attribute) and its params re-queued once, as
Optuna's ``RetryHeartbeatStaleTrialCallback`` does, at once and on any storage. That is all
journal storage can have: Optuna 5 gives it no heartbeats. A trial of another machine is
left to the heartbeats of an RDB storage (failed after the grace period); on journal storage
nothing can tell whether it is alive, and the waiting worker says so on its progress line.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine and has not exited (a zombie has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:  # Linux: an exited child that nobody reaped yet is a zombie, state 'Z'
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def owner(trial: FrozenTrial) -> tuple[str, int] | None:
    host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
    return (host, int(pid)) if host and pid.isdigit() else None


def dead_here(trial: FrozenTrial) -> bool:
    """Run by a process of this machine that is gone. Called under the claim lock, when this
    process runs no trial: a trial that names this very process is a dead one's (pid reuse)."""
    found = owner(trial)
    if found is None or found[0] != socket.gethostname():
        return False
    return found[1] == os.getpid() or not alive(found[1])


def recover(study: optuna.Study) -> list[int]:
    """Fail and re-queue (once) every RUNNING trial of a dead worker of this machine; returns
    their numbers."""
    storage = study._storage  # Optuna has no public call to end another process's trial
    with warnings.catch_warnings():  # "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=1)
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not dead_here(trial):
            continue
        host, pid = owner(trial)
        storage.set_trial_user_attr(trial._trial_id, "failed", f"worker {host}:{pid} died")
        if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            retry(study, trial)  # as it was: the retry must not inherit the "failed" note
            failed.append(trial.number)
    return failed


def waiting_line(study: optuna.Study, journal: bool, grace_seconds: float) -> str:
    """What a worker waits for while other workers' trials run, for its progress line."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return ""
    names = ", ".join(
        f"trial {t.number} ({t.user_attrs.get('worker', 'worker unknown')})" for t in running[:3]
    )
    here = socket.gethostname()
    elsewhere = [t for t in running if (owner(t) or ("", 0))[0] != here]
    if not elsewhere:
        return f"waiting for {names}"
    if journal:
        return (
            f"waiting for {names}: journal storage cannot tell whether another machine's "
            "worker is alive; if it died, Ctrl-C and use PostgreSQL for several machines"
        )
    return f"waiting for {names}; a dead worker's trial is failed after {grace_seconds:g} s"
