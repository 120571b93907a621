"""Trials left RUNNING by a dead worker: found, failed and retried once, on every storage.

Each trial's first act is to record ``worker`` (``host:pid``), ``worker_space`` (the boot
and pid namespace the pid belongs to) and ``worker_started`` (the process's start time, so a
reused pid is not taken for it; ``sign``, ``search.process``). A RUNNING trial whose worker
ran on this machine, in this boot and pid namespace, and whose process is gone is dead for
certain:
it is failed (reason in its ``failed`` user attribute) and its params re-queued once, as
Optuna's ``RetryHeartbeatStaleTrialCallback`` does, at once and on any storage. That is all
journal storage can have: Optuna 5 gives it no heartbeats. A trial of another machine is
left to the heartbeats of an RDB storage (failed after the grace period); on journal storage
nothing can tell whether it is alive, and the waiting worker says so on its progress line.
"""

from __future__ import annotations

import socket
import warnings

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from search import process


def sign(trial: optuna.Trial) -> None:
    """Record who runs ``trial``: ``worker`` (``host:pid``), ``worker_space`` and
    ``worker_started`` (``search.process``)."""
    who = process.record()
    trial.set_user_attr("worker", who["owner"])
    trial.set_user_attr("worker_space", who["space"])
    trial.set_user_attr("worker_started", who["started"])


def owner(trial: FrozenTrial) -> tuple[str, int] | None:
    return process.parse(trial.user_attrs.get("worker", ""))


def dead_here(trial: FrozenTrial) -> bool:
    """Run by a process of this machine that is gone. Called under the claim lock, when this
    process runs no trial: a trial that names this very process is a dead one's (pid reuse),
    or one this process could not end (either way nobody runs it)."""
    attrs = trial.user_attrs
    name, recorded = attrs.get("worker", ""), attrs.get("worker_space")
    if name == process.me() and recorded in (None, process.space()):
        return True
    return process.gone(name, recorded, attrs.get("worker_started"))


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
