"""Many workers on one study: real PostgreSQL (and MariaDB) at 127.0.0.1, real processes,
SIGKILL mid-trial, exactly-once grids, and ``--workers`` on the default local storage."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections import Counter

import psycopg
import pymysql
import pytest
from mlflow import MlflowClient

from tests.helpers import cli, kill_mid_trial, load, start

SECRET = "pw-never-printed"  # trust auth ignores it; it is here to prove it is masked
QUICK = ["--epochs", "2", "--train-size", "2000", "--step-images", "1000", "--final-epochs", "0",
         "--no-warm-start", "--quiet", "--heartbeat", "1"]  # fmt: skip


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database per test (dropped afterwards)."""
    name = f"fs_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True)
    admin.cursor().execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres:{SECRET}@127.0.0.1:5432/{name}"
    admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    admin.close()


@pytest.fixture
def maria_url():
    name = f"fs_{uuid.uuid4().hex[:10]}"
    admin = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    admin.cursor().execute(f"CREATE DATABASE {name}")
    yield f"mysql+pymysql://root@127.0.0.1:3306/{name}"
    admin.cursor().execute(f"DROP DATABASE {name}")
    admin.close()


def finish(procs: list[subprocess.Popen], timeout: float = 600) -> list[tuple[int, str, str]]:
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        results.append((p.returncode, out, err))
    return results


def test_two_workers_share_six_trials(pg_url, server, tmp_path):
    args = ["--storage", pg_url, "--study", "shared", "--trials", "6", *QUICK,
            "--tracking-uri", server, "--registered-model", "shared-model"]  # fmt: skip
    results = finish([start(args, tmp_path), start(args, tmp_path)])
    assert [code for code, _, _ in results] == [0, 0], results
    for _, out, err in results:
        assert SECRET not in out + err
    trials = load(pg_url, "shared").get_trials()
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 6 and len(trials) == 6
    assert sorted(t.number for t in trials) == list(range(6))
    assert len({t.user_attrs["worker"] for t in trials}) == 2, "both workers ran trials"
    client = MlflowClient(server)
    for t in trials:
        assert client.get_run(t.user_attrs["mlflow_run_id"]).info.status == "FINISHED"
    versions = client.search_model_versions("name='shared-model'")
    assert len(versions) == 1, "both workers registered a champion"
    assert versions[0].tags["trial_number"] == str(load(pg_url, "shared").best_trial.number)


def test_sigkill_mid_trial_is_retried_once(pg_url, server, tmp_path):
    args = ["--storage", pg_url, "--study", "crash", "--trials", "6", *QUICK, "--epochs", "4",
            "--tracking-uri", server, "--registered-model", "crash-model"]  # fmt: skip
    victim, survivor = start(args, tmp_path), start(args, tmp_path)
    killed = kill_mid_trial(victim, pg_url, "crash")
    code, out, err = finish([survivor])[0]
    assert code == 0, err
    trials = load(pg_url, "crash").get_trials()
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 6
    dead = trials[killed]
    assert dead.state.name == "FAIL"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].params == dead.params
    assert retries[0].state.name in ("COMPLETE", "PRUNED")
    run = MlflowClient(server).get_run(dead.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED" and run.data.tags["optuna_state"] == "FAIL"


GRID = {"batch_size": [250, 500], "shuffle": [True, False]}


def test_two_workers_run_each_grid_point_once(pg_url, tmp_path):
    (tmp_path / "g.json").write_text(json.dumps(GRID))
    args = ["--storage", pg_url, "--grid", "g.json", *QUICK, "--no-mlflow"]
    assert [r[0] for r in finish([start(args, tmp_path), start(args, tmp_path)])] == [0, 0]
    trials = load(pg_url, "fashion-mnist-grid-g").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    combos = Counter((t.params["batch_size"], t.params["shuffle"]) for t in trials)
    assert combos == Counter({(250, True): 1, (250, False): 1, (500, True): 1, (500, False): 1})


def test_grid_with_a_killed_worker_reruns_only_that_point(pg_url, tmp_path):
    (tmp_path / "g.json").write_text(json.dumps(GRID))
    args = ["--storage", pg_url, "--grid", "g.json", *QUICK, "--epochs", "4", "--no-mlflow"]
    victim, survivor = start(args, tmp_path), start(args, tmp_path)
    killed = kill_mid_trial(victim, pg_url, "fashion-mnist-grid-g")
    assert finish([survivor])[0][0] == 0
    trials = load(pg_url, "fashion-mnist-grid-g").get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    combos = Counter((t.params["batch_size"], t.params["shuffle"]) for t in complete)
    assert len(complete) == 4 and set(combos.values()) == {1}
    assert [t.number for t in trials if t.state.name == "FAIL"] == [killed]


def test_local_workers_on_default_storage(tmp_path):
    done = cli(["--workers", "2", "--trials", "4", *QUICK, "--no-mlflow"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "database is locked" not in done.stderr and "Traceback" not in done.stderr
    trials = load(f"sqlite:///{tmp_path / 'optuna.db'}", "fashion-mnist").get_trials()
    assert len(trials) == 4 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert "test_accuracy" in done.stdout, "the supervisor prints the summary"


def test_local_workers_honour_the_budget(tmp_path):
    budget = 40  # seconds: start-up of the supervisor and two workers, then as many trials as fit
    args = ["--workers", "2", "--trials", "500", *QUICK, "--budget", f"{budget}s", "--no-mlflow"]
    start = time.monotonic()
    done = cli(args, tmp_path)
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    assert f"ended by --budget {budget} s" in done.stdout
    assert elapsed <= budget, f"the run took {elapsed:.1f} s of a {budget} s budget"
    trials = load(f"sqlite:///{tmp_path / 'optuna.db'}", "fashion-mnist").get_trials()
    assert 0 < len(trials) < 500 and all(t.state.name != "RUNNING" for t in trials)


def test_mariadb_storage_works_the_same(maria_url, tmp_path):
    args = ["--storage", maria_url, "--trials", "2", *QUICK, "--no-mlflow"]
    assert [r[0] for r in finish([start(args, tmp_path), start(args, tmp_path)])] == [0, 0]
    trials = load(maria_url, "fashion-mnist").get_trials()
    assert len(trials) == 2 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)


@pytest.mark.parametrize("host", ["127.0.0.1:1", "127.0.0.1:5432/no_such_database"])
def test_bad_postgres_url_is_one_masked_line(tmp_path, host):
    url = f"postgresql://postgres:{SECRET}@{host}"
    done = cli(["--storage", url, *QUICK, "--no-mlflow"], tmp_path, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "postgres:***@" in lines[0] and SECRET not in done.stderr
