"""Many workers on one study: real PostgreSQL (and MariaDB) at 127.0.0.1, real processes,
SIGKILL mid-trial, exactly-once grids, and ``--workers`` on the default local storage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pymysql
import pytest
import torch
from mlflow import MlflowClient
from optuna.trial import TrialState

from search.process import alive
from search.storage import GRACE_FACTOR
from search.workers import workers_that_fit
from tests.helpers import (
    KILLABLE,
    PG_SECRET,
    Forked,
    as_host,
    forked,
    in_process,
    inner_pid,
    kill_mid_trial,
    load,
    running_trial,
    start,
)
from tests.helpers import QUICK as CONFTEST_QUICK

SECRET = PG_SECRET  # in pg_url: trust auth ignores it; it is here to prove it is masked
# The suite's QUICK run, tracked unless a test says --no-mlflow, with a heartbeat each second
# and one thread (two workers, two cores).
QUICK = [a for a in CONFTEST_QUICK if a != "--no-mlflow"] + "--heartbeat 1 --threads 1".split()


@pytest.fixture
def maria_url():
    name = f"fs_{uuid.uuid4().hex[:10]}"
    admin = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    admin.cursor().execute(f"CREATE DATABASE {name}")
    yield f"mysql+pymysql://root@127.0.0.1:3306/{name}"
    admin.cursor().execute(f"DROP DATABASE {name}")
    admin.close()


def finish(
    procs: list[subprocess.Popen | Forked], timeout: float = 600
) -> list[tuple[int, str, str]]:
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        results.append((p.returncode, out, err))
    return results


def beside(args: list[str], cwd: Path) -> list[tuple[int, str, str]]:
    """Two workers on one study: a forked process, and this test process itself (one process
    fewer); their exit codes and outputs."""
    other = Forked(args, cwd)
    try:
        here = in_process(args, cwd)
    except BaseException:
        other.kill()  # no worker left running after a failed test
        other.wait()
        raise
    return [*finish([other]), (here.returncode, here.stdout, here.stderr)]


# Passwords full of what masking regexes miss: '/', ':', '%40' (an encoded '@'), a space and
# unicode. PostgreSQL here trusts 127.0.0.1 and the MLflow server has no auth: both ignore them.
# The pieces between those characters are what a broken mask leaves behind, so each piece is
# searched for; they are 7+ characters because binary artifacts (weights, PNGs) are searched
# too, and a 3-character piece turned up in random bytes of one (a failed CI run).
STORAGE_PIECES = ["Qx7vRtw", "Kz9mLpB", "Pw4nHsD", "Vy8cJmF", "Jm2€üZq"]
TRACKING_PIECES = ["Tk9wQeZ", "Rr4xVnB", "Ss7yKdM", "Uu3pLcA"]
STORAGE_PASSWORD = "{}/{}:{}%40{} {}".format(*STORAGE_PIECES)
TRACKING_PASSWORD = "{}%2F{}:{}%40{}".format(*TRACKING_PIECES)


def everything_mlflow_holds(client: MlflowClient, experiment: str, model: str, tmp) -> str:
    """Params, tags, metrics names, artifacts of every run; the model versions' tags and
    descriptions; as one text to search."""
    texts = []
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    for run in runs:
        texts += [json.dumps(run.data.params), json.dumps(run.data.tags)]
        local = client.download_artifacts(run.info.run_id, "", str(tmp / run.info.run_id))
        texts += [
            p.read_bytes().decode("utf-8", "replace")
            for p in Path(local).rglob("*")
            if p.is_file()
        ]
    for version in client.search_model_versions(f"name='{model}'"):
        texts += [json.dumps(version.tags), version.description or ""]
    return "\n".join(texts)


def test_two_workers_share_six_trials_and_no_password_is_ever_shown(pg_url, server, tmp_path):
    """Two independent processes (as on two machines) against PostgreSQL and an MLflow server,
    both URLs carrying passwords that regexes miss; then every output, file, MLflow record and
    Optuna attribute is searched for any piece of them."""
    storage = pg_url.replace(f":{SECRET}@", f":{STORAGE_PASSWORD}@")
    tracking = f"http://ann:{TRACKING_PASSWORD}@{server.removeprefix('http://')}"
    args = [
        "--storage",
        storage,
        "--study",
        "shared",
        "--trials",
        "6",
        *QUICK,
        "--final-epochs",
        "1",
        "--tracking-uri",
        tracking,
        "--registered-model",
        "shared-model",
    ]
    procs = [start(args, tmp_path), start(args, tmp_path)]  # processes: all their output
    results = finish(procs)
    assert [code for code, _, _ in results] == [0, 0], results
    trials = load(pg_url, "shared").get_trials()
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 6 and len(trials) == 6
    assert sorted(t.number for t in trials) == list(range(6))
    # What the design guarantees: N in total, each trial once, by the two processes; not how
    # they shared them (that depends on which one loaded the data first).
    pids = {str(p.pid) for p in procs}
    assert {t.user_attrs["worker"].rsplit(":", 1)[1] for t in trials} <= pids
    client = MlflowClient(server)
    for t in trials:
        assert client.get_run(t.user_attrs["mlflow_run_id"]).info.status == "FINISHED"
    versions = client.search_model_versions("name='shared-model'")
    assert len(versions) == 1, "both workers registered a champion"
    # One final fit for the study: the other process left the end to the one that claimed it.
    experiment = client.get_experiment_by_name("shared").experiment_id
    fits = client.search_runs([experiment], "attributes.run_name = 'final-fit'")
    assert len(fits) == 1, [f.info.run_id for f in fits]
    fitter = versions[0].tags["fitted_by"].rsplit(":", 1)[1]
    assert fitter in pids
    others = [out for (_, out, _), p in zip(results, procs, strict=True) if str(p.pid) != fitter]
    assert all("being fitted by" in out or "no new final fit" in out for out in others), others
    winner = load(pg_url, "shared").user_attrs["winner"]["trial"]
    assert versions[0].tags["trial_number"] == str(winner)

    seen = [text for _, out, err in results for text in (out, err)]
    assert any("postgres:***@" in out and "ann:***@" in out for out in seen)
    seen += [p.read_bytes().decode("utf-8", "replace") for p in tmp_path.rglob("*") if p.is_file()]
    storage_api = optuna.storages.RDBStorage(pg_url)
    study_id = storage_api.get_study_id_from_name("shared")
    seen += [
        json.dumps(storage_api.get_study_user_attrs(study_id)),
        json.dumps(storage_api.get_study_system_attrs(study_id), default=str),
    ]
    for t in trials:
        seen += [json.dumps(t.user_attrs, default=str), json.dumps(t.system_attrs, default=str)]
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    seen.append(everything_mlflow_holds(client, "shared", "shared-model", downloads))
    leaked = [
        (piece, text[max(0, text.index(piece) - 40) : text.index(piece) + 40])
        for text in seen
        for piece in STORAGE_PIECES + TRACKING_PIECES
        if piece in text
    ]
    assert leaked == [], f"password pieces found (piece, context): {leaked}"


def test_sigkill_mid_trial_is_retried_once(pg_url, server, tmp_path):
    args = [
        "--storage",
        pg_url,
        "--study",
        "crash",
        "--trials",
        "4",
        *QUICK,
        "--epochs",
        "1",
        "--step-images",
        "500",  # four steps a trial: time to be killed between two of them
        "--tracking-uri",
        server,
        "--registered-model",
        "crash-model",
    ]
    victim, survivor = Forked(args, tmp_path), Forked(args, tmp_path)
    killed = kill_mid_trial(victim, pg_url, "crash")
    code, out, err = finish([survivor])[0]
    assert code == 0, err
    trials = load(pg_url, "crash").get_trials()
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 4
    dead = trials[killed]
    assert dead.state.name == "FAIL"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].params == dead.params
    assert retries[0].state.name in ("COMPLETE", "PRUNED")
    run = MlflowClient(server).get_run(dead.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED" and run.data.tags["optuna_state"] == "FAIL"


def test_a_worker_of_another_host_killed_mid_trial_is_retried_after_the_grace_only(
    pg_url, server, tmp_path
):
    """Hosts A and B, each in its own UTS and pid namespace (both workers are pid 1 there),
    share one study on PostgreSQL and one MLflow server. B is SIGKILLed mid-trial: A cannot
    judge B's pid (another host), so it fails and retries that trial once, from B's missed
    heartbeats, no sooner than the grace after the kill; both hosts' trials are in the study."""
    args = ["--storage", pg_url, "--study", "hosts", "--trials", "4", *QUICK]
    # No pruner: a trial seen at its first or second of four steps is still running when the
    # kill lands (a pruned one could end at the very report that made it visible, as in one CI
    # run, and the kill then met no trial).
    args += ["--epochs", "1", "--step-images", "500", "--tracking-uri", server, "--pruner", "none"]
    args += ["--registered-model", "hosts-model"]
    host_a, host_b = as_host("host-a", args, tmp_path), as_host("host-b", args, tmp_path)
    deadline = time.monotonic() + 300
    while (number := running_trial("host-b:1", pg_url, "hosts", at_most=2)) is None:
        assert host_b.poll() is None and time.monotonic() < deadline, host_b.communicate()
        time.sleep(0.05)
    host_b.kill()  # --kill-child: the worker inside dies with it, by SIGKILL
    killed_at = time.time()
    host_b.communicate(timeout=60)
    out, err = host_a.communicate(timeout=600)
    assert host_a.returncode == 0, err
    trials = load(pg_url, "hosts").get_trials()
    dead = trials[number]
    assert dead.state == TrialState.FAIL and "failed" not in dead.user_attrs  # not judged by pid
    # QUICK's --heartbeat 1: B's last beat was at most 1 s before the kill (0.5 s of clock slack)
    grace = GRACE_FACTOR * 1
    assert dead.datetime_complete.timestamp() >= killed_at + grace - 1 - 0.5, "failed too soon"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == number]
    assert len(retries) == 1 and retries[0].params == dead.params
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 4
    hosts = {t.user_attrs["worker"].split(":")[0] for t in trials}
    assert hosts == {"host-a", "host-b"}
    client = MlflowClient(server)
    parents = set()
    for t in trials:
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.info.status == ("FAILED" if t.number == number else "FINISHED"), t.number
        parents.add(run.data.tags["mlflow.parentRunId"])
    assert len(parents) == 1, "both hosts' trial runs are children of one parent run"
    assert client.get_run(parents.pop()).info.status == "FINISHED"


def test_a_worker_frozen_past_the_grace_comes_back_drops_its_trial_and_overwrites_nothing(
    pg_url, tmp_path
):
    """Host B's worker frozen (SIGSTOP) mid-trial: host A fails its trial after the heartbeat
    grace, retries it and ends the study. Thawed, B finds its trial failed: one line, no
    traceback, exit 0; the retry's result and the number of finished trials stay."""
    args = ["--storage", pg_url, "--study", "frozen", "--trials", "3", *QUICK, "--no-mlflow"]
    args += ["--epochs", "1", "--step-images", "500"]
    host_b, host_a = as_host("host-b", args, tmp_path), as_host("host-a", args, tmp_path)
    worker_b = inner_pid(host_b)
    frozen = freeze_mid_trial(worker_b, "host-b:1", pg_url, "frozen")
    out_a, err_a = host_a.communicate(timeout=600)
    assert host_a.returncode == 0, err_a
    before = {t.number: (t.state, t.value) for t in load(pg_url, "frozen").get_trials()}
    assert before[frozen][0] == TrialState.FAIL
    os.kill(worker_b, signal.SIGCONT)
    out, err = host_b.communicate(timeout=600)
    assert host_b.returncode == 0, err
    assert "Traceback" not in err and f"trial #{frozen} was failed and retried" in err
    after = {t.number: (t.state, t.value) for t in load(pg_url, "frozen").get_trials()}
    assert after == before  # nothing overwritten, no trial added
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s, _ in after.values()) == 3


def freeze_mid_trial(pid: int, worker: str, storage: str, study: str, timeout: float = 300) -> int:
    """SIGSTOP ``pid`` while ``worker``'s trial is running and has reported a step; that
    trial's number (read again while frozen, so it is the one the freeze caught)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (number := running_trial(worker, storage, study)) is not None:
            os.kill(pid, signal.SIGSTOP)
            if running_trial(worker, storage, study) == number:
                return number
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("no trial of the victim reached a step in time")


GRID = {"batch_size": [250, 500], "shuffle": [True, False]}


def test_two_workers_run_each_grid_point_once(pg_url, tmp_path):
    (tmp_path / "g.json").write_text(json.dumps(GRID))
    args = ["--storage", pg_url, "--grid", "g.json", *QUICK, "--no-mlflow"]
    assert [r[0] for r in beside(args, tmp_path)] == [0, 0]
    trials = load(pg_url, "fashion-mnist-grid-g").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    combos = Counter((t.params["batch_size"], t.params["shuffle"]) for t in trials)
    assert combos == Counter({(250, True): 1, (250, False): 1, (500, True): 1, (500, False): 1})


def test_grid_with_a_killed_worker_reruns_only_that_point(pg_url, tmp_path):
    (tmp_path / "g.json").write_text(json.dumps(GRID))
    args = ["--storage", pg_url, "--grid", "g.json", *QUICK, *KILLABLE, "--no-mlflow"]
    victim, survivor = Forked(args, tmp_path), Forked(args, tmp_path)
    killed = kill_mid_trial(victim, pg_url, "fashion-mnist-grid-g")
    assert finish([survivor])[0][0] == 0
    trials = load(pg_url, "fashion-mnist-grid-g").get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    combos = Counter((t.params["batch_size"], t.params["shuffle"]) for t in complete)
    assert len(complete) == 4 and set(combos.values()) == {1}
    assert [t.number for t in trials if t.state.name == "FAIL"] == [killed]


def test_local_workers_on_default_stores_share_trials_and_honour_the_budget(tmp_path, monkeypatch):
    """--workers 2 on the default SQLite study and MLflow store (the URLs reach the workers
    through the environment) under a budget that ends the study: it ends in time, every trial
    ran once and was logged once, and the supervisor prints one summary."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # MLflow's default: ./mlflow.db
    # Seconds: start-up of the supervisor and two workers, a few trials, the end. At 40 s a CI
    # run under load completed no trial: before one has, a step's cost is unknown and a trial
    # started just inside the end's reserve may overrun it by a step (47 s of 40, seen).
    budget = 60
    done = forked(
        ["--workers", "2", "--trials", "500", *QUICK, "--budget", f"{budget}s"], tmp_path
    )
    elapsed = done.seconds  # the run's own life, from its process's start
    assert done.returncode == 0, done.stderr
    assert "database is locked" not in done.stderr and "Traceback" not in done.stderr
    assert f"ended by --budget {budget} s" in done.stdout
    assert elapsed <= budget, f"the run took {elapsed:.1f} s of a {budget} s budget: {done.stdout}"
    trials = load(f"sqlite:///{tmp_path / 'optuna.db'}", "fashion-mnist").get_trials()
    assert 0 < len(trials) < 500 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    # A busy machine may leave no time to complete a trial (each is stopped, PRUNED, once it
    # cannot finish): the champion is scored exactly when one did.
    complete = any(t.state.name == "COMPLETE" for t in trials)
    assert ("test_accuracy" in done.stdout) == complete, done.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("fashion-mnist").experiment_id])
    logged = sorted(
        int(r.data.tags["optuna_trial_number"])
        for r in runs
        if "optuna_trial_number" in r.data.tags
    )
    assert logged == [t.number for t in trials], "each trial logged once, by its worker"


def test_mariadb_storage_works_the_same(maria_url, tmp_path):
    args = ["--storage", maria_url, "--trials", "2", *QUICK, "--no-mlflow"]
    assert [r[0] for r in beside(args, tmp_path)] == [0, 0]
    trials = load(maria_url, "fashion-mnist").get_trials()
    assert len(trials) == 2 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)


@pytest.mark.parametrize("host", ["127.0.0.1:1", "127.0.0.1:5432/no_such_database"])
def test_bad_postgres_url_is_one_masked_line(tmp_path, host):
    url = f"postgresql://postgres:{SECRET}@{host}"
    done = in_process(["--storage", url, *QUICK, "--no-mlflow"], tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "postgres:***@" in lines[0] and SECRET not in done.stderr


def test_a_worker_gets_its_configuration_in_its_environment_not_on_its_command_line(
    monkeypatch,
):
    import search.run
    from search.cli import parse_args
    from search.workers import CONFIG_ENV, WORKER_COMMAND, child_config, worker_config, worker_env

    argv = "--storage postgresql://u:pw@h/db --workers 2 --trials 4 --budget 10m --study".split()
    config = parse_args([*argv, "s p a c e"], search.run.__doc__)
    child = worker_config(config, parent_run_id="abc", uri="http://a:pw@h", deadline=123.5)
    assert WORKER_COMMAND == (sys.executable, "-m", "search.run")  # nothing to read there
    env = worker_env(0, torch.device("cpu"), child)
    monkeypatch.setenv(CONFIG_ENV, env[CONFIG_ENV])
    back = child_config()
    assert back == child and CONFIG_ENV not in os.environ  # not inherited any further
    assert back.workers.worker and back.workers.workers == 1 and back.output.quiet
    assert (back.workers.parent_run_id, back.workers.deadline) == ("abc", 123.5)
    assert (back.study.storage, back.tracking.uri) == ("postgresql://u:pw@h/db", "http://a:pw@h")
    assert back.study.name == "s p a c e" and back.workers.threads == config.workers.threads
    assert child_config() is None  # a process of a person's command


def test_processes_started_together_on_fresh_default_stores_all_run(tmp_path, monkeypatch):
    """Three independent processes at the same moment on a fresh directory: Optuna's SQLite
    study and MLflow's default ./mlflow.db are created and migrated once, in turn. (Before
    ``schema_lock`` this failed in 2 of 3 processes; run once, it still catches that.)"""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # MLflow's default: ./mlflow.db
    args = ["--trials", "3", *QUICK, "--epochs", "1", "--step-images", "2000"]
    results = finish([Forked(args, tmp_path) for _ in range(3)])
    assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
    trials = load(f"sqlite:///{tmp_path / 'optuna.db'}", "fashion-mnist").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3  # one step: nothing to prune
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("fashion-mnist").experiment_id])
    children = Counter(
        r.data.tags["optuna_trial_number"] for r in runs if "optuna_trial_number" in r.data.tags
    )
    assert children == Counter({"0": 1, "1": 1, "2": 1}), "one child run per trial"
    assert len(client.search_model_versions("name='fashion-mnist-classifier'")) == 1


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def both_training(supervisor: Forked, storage: str) -> tuple[list[int], list[int]]:
    """(the supervisor's two workers' pids, their two running trials) once both train."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until both workers run a trial
        assert supervisor.poll() is None, supervisor.communicate()
        workers = children_of(supervisor.pid)
        try:
            running = load(storage, "fashion-mnist").get_trials(states=(TrialState.RUNNING,))
        except KeyError:  # no study yet
            running = []
        if len(workers) == 2 and len(running) == 2:
            return workers, [t.number for t in running]
        time.sleep(0.1)
    raise AssertionError("the workers did not start trials in time")


def stopped(pid: int) -> bool:
    """Whether ``pid`` is stopped (SIGSTOP has taken effect, not merely been sent)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def pending(pid: int, sig: int) -> bool:
    """Whether ``sig`` was sent to ``pid`` and waits (a stopped process handles none)."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    masks = [int(line.split()[1], 16) for line in status if line.startswith(("SigPnd", "ShdPnd"))]
    return any(mask >> (sig - 1) & 1 for mask in masks)


def frozen_while_training(supervisor: Forked, storage: str) -> tuple[list[int], list[int]]:
    """``both_training``, with both workers SIGSTOPped and still on those trials: neither can
    end its trial, or find the study done and exit quietly, before a signal reaches it (the
    suite once saw a worker finish the last trial between the look and the signal)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        workers, running = both_training(supervisor, storage)
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        while not all(stopped(pid) for pid in workers):
            time.sleep(0.01)
        still = load(storage, "fashion-mnist").get_trials(states=(TrialState.RUNNING,))
        if sorted(t.number for t in still) == sorted(running):
            return workers, running
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    raise AssertionError("the workers were not caught on their trials in time")


def test_workers_end_with_a_killed_supervisor(tmp_path):
    """SIGKILL the supervisor (as the OOM killer would): its workers end too, marking their
    running trials, instead of running on as orphans."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = ["--workers", "2", "--trials", "50", *QUICK, "--epochs", "20", "--no-mlflow"]
    supervisor = Forked(args, tmp_path)
    workers, running = both_training(supervisor, storage)
    supervisor.kill()
    supervisor.wait()
    deadline = time.monotonic() + 60
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(w) for w in workers), "workers outlived their supervisor"
    # Each orphan marked its own trial as it went (SIGTERM from the kernel, held back while a
    # trial is claimed or its end recorded): none is left RUNNING for a later run to find.
    trials = load(storage, "fashion-mnist").get_trials()
    assert [trials[n].state.name for n in running] == ["FAIL", "FAIL"]
    assert [t.number for t in trials if t.state == TrialState.RUNNING] == []


def test_a_worker_that_fails_fails_the_run_and_the_others_finish_the_study(tmp_path):
    """One of two ``--workers`` children SIGKILLed mid-trial: the other finishes the study
    (the dead one's trial failed and retried), the supervisor ends it, and its exit status is
    1 with the worker's in the summary: a run with a failed worker is not a success."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = ["--workers", "2", "--trials", "6", *QUICK, *KILLABLE, "--no-mlflow"]
    supervisor = Forked(args, tmp_path)
    workers, running = both_training(supervisor, storage)
    os.kill(workers[0], signal.SIGKILL)
    out, err = supervisor.communicate(timeout=300)
    assert supervisor.returncode == 1, err
    assert "worker failed (exit -9)" in out.splitlines()[0] and "Traceback" not in err
    trials = load(storage, "fashion-mnist").get_trials()
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 6
    assert [t.number for t in trials if t.state == TrialState.RUNNING] == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_supervisor_stops_its_workers_and_the_same_command_resumes(tmp_path, sig):
    """Ctrl-C or SIGTERM to a ``--workers`` supervisor is passed on: each worker marks its
    trial FAIL (queued again) and exits 130, the supervisor prints what finished and exits
    130; the same command then finishes the study."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = ["--workers", "2", "--trials", "4", *QUICK, *KILLABLE, "--no-mlflow"]
    supervisor = Forked(args, tmp_path)
    workers, running = frozen_while_training(supervisor, storage)
    supervisor.send_signal(sig)
    while not all(pending(pid, signal.SIGTERM) for pid in workers):  # passed on to each
        time.sleep(0.01)
    for pid in workers:
        os.kill(pid, signal.SIGCONT)
    out, err = supervisor.communicate(timeout=120)
    assert supervisor.returncode == 130, err
    assert err.count("stopped by signal; its running trial is marked FAIL") == 2, err
    assert "interrupted" in out.splitlines()[0] and "Traceback" not in err
    assert not any(alive(w) for w in workers)
    trials = load(storage, "fashion-mnist").get_trials()
    assert [trials[n].state.name for n in running] == ["FAIL", "FAIL"]
    again = forked(args, tmp_path)
    assert again.returncode == 0, again.stderr
    trials = load(storage, "fashion-mnist").get_trials()
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 4


def test_workers_are_capped_and_the_summary_names_the_timeout(tmp_path):
    cores = os.cpu_count() or 1
    done = forked(
        ["--workers", "64", "--trials", "20", *QUICK, "--timeout", "3", "--no-mlflow"], tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert f"--workers 64: starting {min(cores, 20)} (" in done.stderr
    assert "ended by --timeout 3 s" in done.stdout and " done" not in done.stdout
    trials = load(f"sqlite:///{tmp_path / 'optuna.db'}", "fashion-mnist").get_trials()
    assert 0 < len(trials) < 20


def test_never_more_workers_than_trials_left_cores_or_memory():
    cores = os.cpu_count() or 1
    assert workers_that_fit(1, 5, 0) == (1, "")
    count, line = workers_that_fit(cores + 8, 1, 0)
    assert count == 1 and line.startswith(f"--workers {cores + 8}: starting 1 (1 trial(s) left")
    count, line = workers_that_fit(cores + 8, 100, 0)
    assert count == cores and f"{cores} CPU cores" in line
    count, line = workers_that_fit(2, 100, 2**50)  # a petabyte of data per worker
    assert count == 1 and "memory for 1 (" in line
    assert workers_that_fit(4, 0, 0)[0] == 0
