"""deploy/slurm on a real single-node Slurm cluster (``deploy/slurm/local-cluster.sh``, which
``make test`` starts): a job array of workers on one PostgreSQL study and an MLflow server,
then the one job that ends the study; ``scancel`` of a running task is recovered."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from search.config import STORAGE_ENV
from tests.helpers import QUICK, ROOT, load

pytestmark = pytest.mark.xdist_group("slurm")  # the cluster's two CPUs: one test at a time

SUBMIT = ROOT / "deploy" / "slurm" / "submit.sh"
# One core and one thread a task, so the two tasks of the array run at once on two cores.
FLAGS = [a for a in QUICK if a not in ("--no-mlflow", "--quiet")] + ["--heartbeat", "1"]
FLAGS += ["--epochs", "1", "--step-images", "500", "--final-epochs", "1"]


@pytest.fixture(scope="module")
def cluster() -> None:
    assert shutil.which("sbatch"), "Slurm is missing: run deploy/slurm/local-cluster.sh"
    up = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    assert up.returncode == 0 and re.match(r"(idle|mix|alloc)", up.stdout), (
        f"no Slurm node takes jobs ({up.stdout.strip() or up.stderr.strip()}): "
        "run deploy/slurm/local-cluster.sh"
    )


def submit(
    workers: int, trials: int, study: str, pg_url: str, server: str, cwd: Path, *extra: str
):
    """``deploy/slurm/submit.sh``, as a user runs it, with ``extra`` flags: (array job id, end
    job id)."""
    env = {
        **os.environ,
        STORAGE_ENV: pg_url,
        "MLFLOW_TRACKING_URI": server,
        "PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
        "CPUS_PER_TASK": "1",
    }
    args = [str(SUBMIT), str(workers), str(trials), "--study", study, *FLAGS, *extra]
    args += ["--registered-model", f"{study}-model"]
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=True)
    array, end = re.search(r"job (\d+) \(array.*job (\d+)", done.stdout).groups()
    return array, end


def queued(jobs: str) -> bool:
    """Whether Slurm still lists any of ``jobs`` (ids, comma-separated), pending or running."""
    listed = subprocess.run(["squeue", "-h", "-j", jobs], capture_output=True, text=True)
    return bool(listed.stdout.strip())


def wait_for(jobs: list[str], timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not queued(",".join(jobs)):
            return
        time.sleep(0.5)
    raise AssertionError(f"jobs {jobs} still queued after {timeout} s")


def ended_study(pg_url: str, server: str, study: str, trials: int, cwd: Path) -> list:
    """Checks shared by both tests: the trials, one final fit, one champion; returns them."""
    found = load(pg_url, study).get_trials()
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in found) == trials
    client = MlflowClient(server)
    experiment = client.get_experiment_by_name(study).experiment_id
    fits = client.search_runs([experiment], "attributes.run_name = 'final-fit'")
    assert len(fits) == 1, "the study was ended more than once"
    champion = client.get_model_version_by_alias(f"{study}-model", "champion")
    assert champion.tags["study"] == study
    outputs = "".join(p.read_text() for p in cwd.glob("fashion-search-*.out"))
    assert "Traceback" not in outputs
    assert outputs.count("the end of the study (re-runs, final fit, champion) is left") >= 1
    return found


def test_a_job_array_runs_one_study_and_one_job_ends_it(cluster, pg_url, server, tmp_path):
    array, end = submit(2, 4, "slurm", pg_url, server, tmp_path)
    wait_for([array, end])
    trials = ended_study(pg_url, server, "slurm", 4, tmp_path)
    assert len({t.user_attrs["worker"] for t in trials}) == 2, "one task ran every trial"
    said = "the end of the study (re-runs, final fit, champion) is left to a later run"
    tasks = [p.read_text() for p in tmp_path.glob("fashion-search-*.out")]
    assert sum(said in out for out in tasks) == 2  # each array task ran to its end


def test_scancel_of_a_running_task_is_recovered(cluster, pg_url, server, tmp_path):
    """``scancel`` sends the task SIGTERM: its trial ends FAIL and is queued again once, and
    the study still ends with every trial it asked for and one champion. No pruner: every
    trial passes steps 2 and 3, so the poll has six windows to catch one, not the one or two
    trials that successive halving lets past its first rung (those took half a second each,
    and a busy CI machine's poll once missed them all)."""
    array, end = submit(2, 6, "cancel", pg_url, server, tmp_path, "--pruner", "none")
    deadline = time.monotonic() + 600
    victim = None
    while victim is None:
        assert time.monotonic() < deadline, "no task of the array reached a step in time"
        assert queued(array), "the array ended before a task was caught between steps 2 and 3"
        for task in ("1", "2"):
            worker = task_worker(array, task)
            if not worker:
                continue
            number = cancelled_mid_trial(array, task, worker, pg_url)
            if number is not None:  # trial #0 too: one victim, never two
                victim = (worker, number)
                break
        time.sleep(0.1)
    wait_for([array, end])
    trials = ended_study(pg_url, server, "cancel", 6, tmp_path)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [(t.user_attrs.get("worker"), t.number) for t in failed] == [victim]
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retries) == 1 and retries[0].params == failed[0].params


def between_rungs(worker: str, pg_url: str) -> int | None:
    """``worker``'s running trial if it has reported step 2 or 3 of its 4: past the pruner's
    first rung (step 1), before its last, so it still trains when a signal lands."""
    try:
        trials = load(pg_url, "cancel").get_trials()
    except KeyError:  # the study is not created yet
        return None
    for t in trials:
        if t.user_attrs.get("worker") == worker and t.state == TrialState.RUNNING:
            return t.number if len(t.intermediate_values) in (2, 3) else None
    return None


def cancelled_mid_trial(array: str, task: str, worker: str, pg_url: str) -> int | None:
    """``scancel`` of the task while it is frozen (SIGSTOP) in a trial between rungs, so the
    SIGTERM lands inside that trial once it is thawed (a trial pruned or ended meanwhile
    would leave the signal between trials, with nothing to fail); the trial, or ``None``."""
    pid = int(worker.rpartition(":")[2])
    if between_rungs(worker, pg_url) is None:
        return None
    os.kill(pid, signal.SIGSTOP)
    try:
        number = between_rungs(worker, pg_url)
        if number is not None:
            subprocess.run(["scancel", f"{array}_{task}"], check=True)
        return number
    finally:
        os.kill(pid, signal.SIGCONT)


def task_worker(array: str, task: str) -> str | None:
    """``host:pid`` of the search.run of array task ``task``, once it runs."""
    listed = subprocess.run(
        ["squeue", "-h", "-j", f"{array}_{task}", "-o", "%T"], capture_output=True, text=True
    ).stdout.strip()
    if listed != "RUNNING":
        return None
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        mine = f"SLURM_ARRAY_JOB_ID={array}".encode() in environ
        if mine and f"SLURM_ARRAY_TASK_ID={task}".encode() in environ and b"search.run" in cmdline:
            return f"{os.uname().nodename}:{proc.name}"
    return None
