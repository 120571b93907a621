"""Shared fixtures: the real Fashion-MNIST, read and verified once per test session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from data import locate_data_dir, make_splits, read_raw
from tests.helpers import free_port, wait_http


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


# One epoch of 2,000 images in two steps, no warm-start trial (the article's CNN is the most
# expensive point of the space) and no final fit: the tests that need those ask for them.
QUICK = ["--epochs", "1", "--train-size", "2000", "--step-images", "1000", "--final-epochs", "0",
         "--no-warm-start", "--quiet", "--no-mlflow"]  # fmt: skip


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A real MLflow tracking server on loopback (sqlite backend, local artifact store)."""
    home = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
         "--artifacts-destination", str(home / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{uri}/health", timeout=120, process=proc)
        yield uri
    finally:
        proc.terminate()
        proc.wait(timeout=30)
