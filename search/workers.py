"""``--workers K``: K local processes share one study; this process only supervises.

Each worker is ``python -m search.run`` with a command line rendered from the supervisor's
configuration (``worker_config``): ``--worker`` (run trials, skip the final evaluation), its
share of the CPU threads, the supervisor's MLflow parent run and deadline; the URLs travel in
the environment (``FASHION_SEARCH_STORAGE``, ``MLFLOW_TRACKING_URI``), and with ``--device
cuda`` on a machine with several GPUs each worker gets one (``CUDA_VISIBLE_DEVICES``).
Separate processes, not threads: each frees its memory when it ends, and the GIL is not
shared. The workers coordinate only through the storage (see ``search.study``). Ctrl-C or
SIGTERM here is passed on as SIGTERM to every worker, which marks its running trial and ends
its MLflow run before exiting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace

import torch

from search.cli import render
from search.config import RunConfig

# Not on a child's command line: the URLs (they may hold passwords, and command lines are
# visible to every user of a machine; ``worker_env`` carries them) and --workers itself.
PRIVATE = ("storage", "uri", "workers")


def worker_config(config: RunConfig, parent_run_id: str | None, deadline: float | None):
    """A child's configuration: the supervisor's, as a quiet ``--worker`` with its share of
    the threads, the supervisor's MLflow parent run and its deadline."""
    workers = replace(config.workers, worker=True, parent_run_id=parent_run_id, deadline=deadline)
    return replace(config, workers=workers, output=replace(config.output, quiet=True))


def worker_argv(config: RunConfig) -> list[str]:
    return [sys.executable, "-m", "search.run", *render(config, leave_out=PRIVATE)]


def worker_env(index: int, device: torch.device, urls: dict[str, str]) -> dict[str, str]:
    """This environment, the URLs (``FASHION_SEARCH_STORAGE``, ``MLFLOW_TRACKING_URI``) and,
    on a machine with several GPUs, one GPU per worker."""
    env = {**os.environ, **urls}
    if device.type == "cuda" and torch.cuda.device_count() > 1:
        env["CUDA_VISIBLE_DEVICES"] = str(index % torch.cuda.device_count())
    return env


def supervise(
    config: RunConfig,
    device: torch.device,
    urls: dict[str, str],
    on_tick: Callable[[], None],
) -> str:
    """Run ``config.workers.workers`` workers to the end (``config`` is the children's, see
    ``worker_config``); returns 'done', 'interrupted' or 'worker failed (...)'."""
    command = worker_argv(config)
    count, tick_seconds = config.workers.workers, config.workers.poll_seconds
    procs = [subprocess.Popen(command, env=worker_env(i, device, urls)) for i in range(count)]
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
