"""Trials left RUNNING by a dead worker: found, failed and retried once, on every storage.

Each trial's first act is to record ``worker`` (``host:pid``) and ``worker_space`` (the boot
and pid namespace the pid belongs to; ``sign``). A RUNNING trial whose worker ran on this
machine, in this boot and pid namespace, and whose process is gone is dead for certain:
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


def process_space() -> str:
    """``BOOT_ID:PID_NAMESPACE`` of this process (empty parts off Linux): a pid means one
    process only within one boot and one pid namespace, and containers may share a host name."""
    parts = []
    for read in (
        lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
        lambda: str(os.stat("/proc/self/ns/pid").st_ino),
    ):
        try:
            parts.append(read())
        except OSError:
            parts.append("")
    return ":".join(parts)


def sign(trial: optuna.Trial) -> None:
    """Record who runs ``trial``: ``worker`` (``host:pid``) and ``worker_space``."""
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    trial.set_user_attr("worker_space", process_space())


def owner(trial: FrozenTrial) -> tuple[str, int] | None:
    host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
    return (host, int(pid)) if host and pid.isdigit() else None


def dead_here(trial: FrozenTrial) -> bool:
    """Run by a process of this machine that is gone. Called under the claim lock, when this
    process runs no trial: a trial that names this very process is a dead one's (pid reuse)."""
    found = owner(trial)
    if found is None or found[0] != socket.gethostname():
        return False
    recorded, here = trial.user_attrs.get("worker_space", process_space()), process_space()
    if recorded != here:
        boot, mine = recorded.partition(":")[0], here.partition(":")[0]
        # Booted since: the process is gone. Another pid namespace (a container with this
        # host name): its pids mean nothing here, so nothing can be told.
        return bool(boot and mine and boot != mine)
    return found[1] == os.getpid() or not alive(found[1])


def recover(study: optuna.Study) -> list[int]:
    """Fail and re-queue (once) every RUNNING trial of a dead worker of this machine; returns
    their numbers."""
    storage = study._storage  # Optuna has no public call to end another process's trial
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not dead_here(trial):
            continue
        host, pid = owner(trial)
        storage.set_trial_user_attr(trial._trial_id, "failed", f"worker {host}:{pid} died")
        if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            retry_once(study, trial)  # as it was: the retry must not inherit the "failed" note
            failed.append(trial.number)
    return failed


def retry_interrupted(study: optuna.Study, number: int) -> None:
    """Trial ``number``, ended FAIL by an interrupt of its worker (Ctrl-C, SIGTERM, a
    cluster's ``scancel``), queued again once, as a dead worker's is: an interrupt says
    nothing against its params."""
    trial = study.get_trials(deepcopy=False)[number]
    if trial.state == TrialState.FAIL:
        retry_once(study, trial)


def retry_once(study: optuna.Study, trial: FrozenTrial) -> None:
    """``trial``'s params queued again, once in its history, as Optuna's stale-trial retry."""
    with warnings.catch_warnings():  # "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=1)(study, trial)


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
