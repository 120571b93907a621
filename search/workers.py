"""``--workers K``: K local processes share one study; this process only supervises.

Each worker is ``python -m search.run`` with the same flags plus ``--worker`` (run trials,
skip the final evaluation), its share of the CPU threads (``--threads``), the supervisor's
MLflow parent run, and, with ``--device cuda`` on a machine with several GPUs, one GPU each
(``CUDA_VISIBLE_DEVICES``). Separate processes, not threads: each frees its memory when it
ends, and the GIL is not shared. The workers coordinate only through the storage (see
``search.study``). Ctrl-C or SIGTERM here is passed on as SIGTERM to every worker, which marks
its running trial and ends its MLflow run before exiting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable

import torch

PRIVATE = ("--workers", "--storage", "--tracking-uri")  # flags the workers do not get on argv
STORAGE_ENV = "FASHION_SEARCH_STORAGE"  # --storage's default, how a worker gets its URL


def worker_argv(
    argv: list[str], threads: int, parent_run_id: str | None, deadline: float | None = None
) -> list[str]:
    """The supervisor's flags minus ``--workers`` and the URLs (they may hold passwords, and a
    command line is visible to every user of the machine: ``worker_env`` carries them), plus
    the worker's own flags."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in PRIVATE:
            skip = True
            continue
        if arg.startswith(tuple(f"{flag}=" for flag in PRIVATE)) or arg == "--quiet":
            continue
        out.append(arg)
    out += ["--worker", "--quiet", "--threads", str(threads)]
    if parent_run_id:
        out += ["--parent-run-id", parent_run_id]
    if deadline is not None:
        out += ["--deadline", repr(deadline)]
    return [sys.executable, "-m", "search.run", *out]


def worker_env(index: int, device: torch.device, urls: dict[str, str]) -> dict[str, str]:
    """This environment, the URLs (``FASHION_SEARCH_STORAGE``, ``MLFLOW_TRACKING_URI``) and,
    on a machine with several GPUs, one GPU per worker."""
    env = {**os.environ, **urls}
    if device.type == "cuda" and torch.cuda.device_count() > 1:
        env["CUDA_VISIBLE_DEVICES"] = str(index % torch.cuda.device_count())
    return env


def supervise(
    argv: list[str],
    workers: int,
    threads: int,
    device: torch.device,
    parent_run_id: str | None,
    on_tick: Callable[[], None],
    urls: dict[str, str],
    deadline: float | None = None,
    tick_seconds: float = 2.0,
) -> str:
    """Run the workers to the end; returns 'done', 'interrupted' or 'worker failed (...)'."""
    command = worker_argv(argv, threads, parent_run_id, deadline)
    procs = [subprocess.Popen(command, env=worker_env(i, device, urls)) for i in range(workers)]
    try:
        while alive := [p for p in procs if p.poll() is None]:
            try:
                alive[0].wait(timeout=tick_seconds)
            except subprocess.TimeoutExpired:
                pass
            on_tick()
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        return "interrupted"
    failed = [p.returncode for p in procs if p.returncode != 0]
    return f"worker failed (exit {failed[0]})" if failed else "done"
