"""search.viewers: the command a run prints for its MLflow store, run as a person would run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from search.viewers import free_port, mlflow_ui_command, wait_http


def _tree(root: int) -> list[str]:
    """The command lines of ``root``'s descendants, by parent pid from /proc (a thread's
    ``children`` file would miss processes that a server starts from another thread)."""
    parents: dict[int, int] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError):
            continue
    found, frontier = [], {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        for pid in frontier:
            try:
                found.append((Path("/proc") / str(pid) / "cmdline").read_bytes().decode())
            except OSError:
                continue
    return found


def test_the_printed_mlflow_ui_command_serves_the_store_without_the_job_runner(tmp_path):
    """Pasted into a shell of the venv (plus a free port), the line serves the store, and none
    of its processes is MLflow 3's job runner or a huey consumer (which poll half a core away
    while a study trains beside them). The tree is read once the UI has answered a page that
    reads the store, so the server is fully up."""
    port = free_port()
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = f"{mlflow_ui_command(store)} --port {port}"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", None)  # what the line itself says is the point
    shell = subprocess.Popen(
        ["sh", "-c", command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health", timeout=120, process=shell)
        wait_http(f"{base}/ajax-api/2.0/mlflow/experiments/search?max_results=1", process=shell)
        tree = _tree(shell.pid)
        assert any("mlflow" in line for line in tree), tree
        assert not [line for line in tree if "huey" in line or "job" in line.lower()], tree
    finally:
        os.killpg(shell.pid, signal.SIGTERM)
        shell.wait(timeout=30)
