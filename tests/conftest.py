"""Shared fixtures: the real Fashion-MNIST, read and verified once per test session."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
import torch

from data import locate_data_dir, make_splits, read_raw
from search.viewers import Launched
from tests.helpers import (
    AWKWARD,
    PG_SECRET,
    QUICK,
    THREADS,
    cli,
    in_process,
    mlflow_server,
)


@pytest.fixture(scope="session")
def raw():
    return read_raw(locate_data_dir(download=False))


@pytest.fixture(scope="session")
def small_splits(raw):
    """2,000 train / 1,000 val images: enough to learn something in a second on a CPU."""
    return make_splits(raw, device="cpu", val_size=1000, train_size=2000, seed=0)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the CLI in an empty directory (its default storage is ./optuna.db)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables made (about 3 s of migrations), made once."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-empty") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_registered_models(max_results=1)  # both stores
    return path


@pytest.fixture
def local_mlflow(tmp_path, empty_mlflow_db):
    """A real local MLflow store of this test's own (a copy of the empty one; artifacts under
    ``tmp_path``) and a client of it; MLflow's model APIs read the global URI, so it is set
    for the test and put back after."""
    import mlflow
    from mlflow import MlflowClient

    shutil.copy(empty_mlflow_db, tmp_path / "mlflow.db")
    before = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("tests", artifact_location=str(tmp_path / "artifacts"))
    yield client, experiment
    mlflow.set_tracking_uri(before)


STUDY_FIXTURES = ("finished", "searched")  # each built once, by the worker that runs its tests
SERVER_URL = "TESTS_MLFLOW_SERVER"  # the xdist controller's server, for its workers
_SERVER = pytest.StashKey[contextlib.ExitStack]()


def _xdist_controller(config: pytest.Config) -> bool:
    return config.getoption("dist", "no") != "no" and not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(THREADS)
    if config.getoption("dist", "no") == "loadgroup" and pytest.version_tuple[:2] >= (9, 2):
        raise pytest.UsageError(
            "--dist loadgroup does not group on pytest 9.2 (pytest-xdist issue #1386): "
            "install the pinned pytest<9.2 (make install)"
        )
    if _xdist_controller(config):  # one server for all workers, starting while they start
        stack = contextlib.ExitStack()
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlflow-")))
        server = stack.enter_context(mlflow_server(home))
        os.environ[SERVER_URL] = server.base  # the workers inherit it
        config.stash[_SERVER] = stack


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SERVER in config.stash:
        config.stash[_SERVER].close()


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests sharing a costly study fixture run in one xdist worker (``--dist loadgroup``),
    so it is built once; the rest go wherever a worker is free (the MLflow server is the
    controller's, shared by all). (pytest-xdist 3.8 stops grouping on pytest 9.2, xdist issue
    #1386: pyproject.toml keeps pytest below 9.2, and ``pytest_configure`` refuses to run on
    it.)"""
    for item in items:
        for shared in STUDY_FIXTURES:
            if shared in item.fixturenames:
                item.add_marker(pytest.mark.xdist_group(shared))
                break


@pytest.fixture(scope="session", autouse=True)
def server_starting(request, tmp_path_factory):
    """Without xdist: the MLflow server starts with the session when any test wants it, so
    its ~13 s of start-up (imports, a fresh SQLite migration, on one core) overlap the tests
    that come before the MLflow ones. (With xdist the controller started it.)"""
    wanted = any("server" in item.fixturenames for item in request.session.items)
    if not wanted or SERVER_URL in os.environ:
        yield None
        return
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture(scope="session")
def server(server_starting: Launched | None) -> str:
    """The base URL of that server, once it answers."""
    if server_starting is None:
        return Launched(os.environ[SERVER_URL], "/health").ready()
    return server_starting.ready()


@pytest.fixture(scope="session")
def finished(tmp_path_factory):
    """One tiny study run as a user would, in a subprocess: an awkward name, the warm-start
    trial, sub-epoch steps (2,000 images in steps of 500), a one-epoch final fit; then
    resumed from 2 to 3 trials (in this process, with no final fit: the best trial's own
    weights are scored). Shared, read only, by the tests below."""
    cwd = tmp_path_factory.mktemp("finished") / "a" / "b"  # room for "../.." to escape into
    cwd.mkdir(parents=True)
    flags = [a for a in QUICK if a != "--no-warm-start"]
    flags += ["--study", AWKWARD, "--step-images", "500", "--final-epochs", "1"]
    resume = ["--trials", "3", *flags, "--final-epochs", "0"]
    runs = [cli(["--trials", "2", *flags], cwd), in_process(resume, cwd)]
    for done in runs:
        assert done.returncode == 0, done.stderr
    return cwd, runs


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database per test (dropped afterwards)."""
    name = f"fs_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True)
    admin.cursor().execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres:{PG_SECRET}@127.0.0.1:5432/{name}"
    admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    admin.close()
