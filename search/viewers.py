"""The viewers a person opens on a study: the MLflow UI, optuna-dashboard (each a server on a
free loopback port, started as a command of this venv) and the headless Chromium that the browser
tests and ``docs.screenshots`` look at them through. Shared by both, so neither imports the other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"  # Debian's package, installed by set-up
# Headless Chromium as root in a closed network: no sandbox, no GPU, no calls home.
CHROMIUM_FLAGS = (
    "--no-sandbox --disable-gpu --disable-background-networking --disable-component-update "
    "--disable-sync --no-first-run"
).split()


# MLflow 3's `mlflow server` and `mlflow ui` also start a job runner and seven huey consumers
# for GenAI jobs this project never submits: eight more interpreters (36 CPU-s a start and stop
# against 11 without them) and half a core polled away while the server idles (2026-12-02,
# 2 cores, MLflow 3.17.2). The tracking server is the same without them; other programs ignore it.
NO_JOBS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_ui_command(store: str) -> str:
    """The shell command a run prints for opening its local MLflow store: the UI on loopback,
    without the job runner (a person browsing while a study trains would slow it by half a
    core on a small machine)."""
    switches = " ".join(f"{name}={value}" for name, value in NO_JOBS.items())
    return f"{switches} mlflow ui --backend-store-uri {store} --host 127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Launched:
    """A server process started by ``launching`` and the base URL it will answer on."""

    base: str
    ready_path: str
    process: subprocess.Popen | None = None
    timeout: float = 120

    def ready(self) -> str:
        """Wait until the server answers, and return its base URL."""
        wait_http(self.base + self.ready_path, timeout=self.timeout, process=self.process)
        return self.base


@contextlib.contextmanager
def launching(
    program: str,
    args: list[str],
    ready: str,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: float = 120,
) -> Iterator[Launched]:
    """``program`` (a command of this venv: mlflow, optuna-dashboard) with ``args``, on a free
    port of 127.0.0.1, until the block ends. Yields at once, while the server starts and
    others work; ``.ready()`` waits until ``ready`` (a path) answers."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name(program)),
        *args,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {**(os.environ if env is None else env), **NO_JOBS}
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield Launched(f"http://127.0.0.1:{port}", ready, proc, timeout)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextlib.contextmanager
def serving(program: str, args: list[str], ready: str, **options) -> Iterator[str]:
    """``launching``, once ``ready`` answers: yields the base URL."""
    with launching(program, args, ready, **options) as server:
        yield server.ready()


def wait_http(url: str, timeout: float = 60.0, process=None) -> bytes:
    """Poll ``url`` until it answers 200 (a server starting up), or fail with the reason."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError as exc:
            last = exc
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s: {last}")
