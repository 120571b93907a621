"""Shared fixtures: the real Fashion-MNIST, read and verified once per test session."""

from __future__ import annotations

import pytest

from data import locate_data_dir, make_splits, read_raw
from tests.helpers import cli, launching


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


# One epoch of 2,000 images in two steps, validated on 500, no warm-start trial (the article's
# CNN is the most expensive point of the space), no final fit, the champion scored on 1,000 of
# the 10,000 test images (all of them cost a CPU 3-15 s per run), and waiting workers look
# again every 0.2 s: the tests that need more ask for it.
QUICK = (
    "--epochs 1 --train-size 2000 --val-size 500 --step-images 1000 --final-epochs 0 "
    "--no-warm-start --test-size 1000 --poll-seconds 0.2 --quiet --no-mlflow"
).split()


@pytest.fixture(scope="session", autouse=True)
def server_starting(request, tmp_path_factory):
    """A real MLflow tracking server on loopback (sqlite backend, local artifact store),
    started with the session when any test wants it: its ~13 s of start-up (imports, a fresh
    SQLite migration, on one core) overlap the tests that come before the MLflow ones."""
    if not any("server" in item.fixturenames for item in request.session.items):
        yield None
        return
    home = tmp_path_factory.mktemp("mlflow")
    store = [
        "--backend-store-uri",
        f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination",
        str(home / "artifacts"),
        "--workers",
        "1",
    ]
    with launching("mlflow", ["server", *store], "/health") as url:
        yield url


@pytest.fixture(scope="session")
def server(server_starting) -> str:
    """The base URL of that server, once it answers."""
    return server_starting()


AWKWARD = "../../escaped 'étude'"  # valid for Optuna and MLflow, unsafe as a file name


@pytest.fixture(scope="session")
def finished(tmp_path_factory):
    """One tiny study run as a user would, in a subprocess: an awkward name, the warm-start
    trial, sub-epoch steps (2,000 images in steps of 500), a one-epoch final fit; then
    resumed from 2 to 3 trials. Shared, read only, by the tests below."""
    cwd = tmp_path_factory.mktemp("finished") / "a" / "b"  # room for "../.." to escape into
    cwd.mkdir(parents=True)
    flags = [a for a in QUICK if a != "--no-warm-start"]
    flags += ["--study", AWKWARD, "--step-images", "500", "--final-epochs", "1"]
    runs = [cli(["--trials", str(n), *flags], cwd) for n in (2, 3)]
    for done in runs:
        assert done.returncode == 0, done.stderr
    return cwd, runs
