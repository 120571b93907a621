"""``--workers K``: K local processes share one study; this process only supervises.

Each worker is ``python -m search.run`` with no arguments: its whole configuration travels in
its environment as JSON (``CONFIG_ENV``; ``worker_config``: the supervisor's, as a quiet
worker that runs trials and leaves the end of the study, with its share of the CPU threads,
the supervisor's MLflow parent run, tracking URI and deadline). Never on a command line, which
every user of a machine can read: the URLs may hold passwords. With ``--device cuda`` on a
machine with several GPUs each worker gets one (``CUDA_VISIBLE_DEVICES``).
Separate processes, not threads: each frees its memory when it ends, and the GIL is not
shared. The workers coordinate only through the storage (see ``search.study``). Ctrl-C or
SIGTERM here is passed on as SIGTERM to every worker, which marks its running trial and ends
its MLflow run before exiting; a supervisor killed outright (SIGKILL, the OOM killer) takes
its workers with it (``die_with_supervisor``: the kernel's parent-death signal on Linux, a
watch on the parent elsewhere).

``workers_that_fit``: never more workers than trials left, CPU cores, or memory for a
process each (the dataset on the device plus the interpreter, torch and MLflow, measured).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import torch

from search.config import RunConfig, from_json, to_json
from search.study import Ended, Stop

CONFIG_ENV = "FASHION_SEARCH_WORKER_CONFIG"  # a child's configuration, as JSON
SUPERVISOR_ENV = "FASHION_SEARCH_SUPERVISOR"  # the supervisor's pid, for its workers
# A worker's memory besides the dataset: Python, torch, MLflow, a model in training and the
# allocator's cache. Measured: a default 6-trial run peaked at 1,796 MB with 226 MB of data
# (README, Measured); rounded up.
PROCESS_BYTES = 1600 * 2**20
PR_SET_PDEATHSIG = 1  # linux/prctl.h
ORPHAN_GRACE = 12  # seconds an orphaned worker has to mark its trial before it is ended
RESEND_SECONDS = 3  # long enough for a worker to end its MLflow run before the next SIGTERM
EXIT_ORPHANED = 143  # 128 + SIGTERM: what a worker ended by the signal would return


def worker_config(
    config: RunConfig, parent_run_id: str | None, uri: str | None, deadline: float | None
) -> RunConfig:
    """A child's configuration: the supervisor's, as a quiet worker (one process, its share
    of the threads), in the supervisor's MLflow parent run at ``uri``, ending by ``deadline``."""
    workers = replace(
        config.workers, workers=1, worker=True, parent_run_id=parent_run_id, deadline=deadline
    )
    return replace(
        config,
        workers=workers,
        tracking=replace(config.tracking, uri=uri),
        output=replace(config.output, quiet=True),
    )


WORKER_COMMAND = (sys.executable, "-m", "search.run")  # no arguments: see CONFIG_ENV


def worker_env(index: int, device: torch.device, config: RunConfig) -> dict[str, str]:
    """This environment, the child's configuration and, on a machine with several GPUs, one
    GPU per worker."""
    env = {**os.environ, CONFIG_ENV: to_json(config), SUPERVISOR_ENV: str(os.getpid())}
    if device.type == "cuda" and torch.cuda.device_count() > 1:
        env["CUDA_VISIBLE_DEVICES"] = str(index % torch.cuda.device_count())
    return env


def child_config() -> RunConfig | None:
    """In a ``--workers`` child: the configuration its supervisor gave it (taken out of the
    environment, so that nothing this process starts inherits it); else ``None``."""
    text = os.environ.pop(CONFIG_ENV, None)
    return from_json(text) if text else None


def available_memory() -> int | None:
    """Bytes the kernel can give without swapping (``MemAvailable``); ``None`` off Linux."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def workers_that_fit(wanted: int, left: int, dataset_bytes: int) -> tuple[int, str]:
    """How many workers to start, and a line saying why if fewer than ``wanted``."""
    cores = os.cpu_count() or 1
    each = dataset_bytes + PROCESS_BYTES
    memory = available_memory()
    fit = max(1, memory // each) if memory is not None else wanted
    count = max(0, min(wanted, left, cores, fit))
    if count == wanted or left == 0:
        return count, ""
    reasons = [
        f"{left} trial(s) left" if left < wanted else "",
        f"{cores} CPU cores" if cores < wanted else "",
        f"memory for {fit} ({memory / 2**30:.1f} GiB available, ~{each / 2**30:.2f} GiB each)"
        if fit < wanted
        else "",
    ]
    because = "; ".join(r for r in reasons if r)
    return count, f"--workers {wanted}: starting {count} ({because})"


def die_with_supervisor() -> None:
    """In a worker: end when the supervisor dies, however it dies. The kernel sends SIGTERM at
    once (Linux's parent-death signal), so the running trial is marked FAIL; a watch on the
    parent sends it again every few seconds (a signal that lands in a finalizer is lost to Python)
    and, if the worker is still there after ``ORPHAN_GRACE`` seconds, ends it outright (its
    trial is then recovered by the next run as a dead worker's; ``search.recovery``)."""
    supervisor = int(os.environ.get(SUPERVISOR_ENV, "0"))
    if not supervisor:
        return
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the watch alone
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    threading.Thread(target=_watch, args=(supervisor,), daemon=True).start()


def _watch(supervisor: int) -> None:
    while os.getppid() == supervisor:  # a parent's death has no event to wait on
        time.sleep(1.0)
    for _ in range(ORPHAN_GRACE // RESEND_SECONDS):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(RESEND_SECONDS)
    os._exit(EXIT_ORPHANED)


def supervise(
    config: RunConfig,
    count: int,
    device: torch.device,
    on_tick: Callable[[], None],
) -> Stop:
    """Run ``count`` workers to the end (``config`` is the children's, see ``worker_config``):
    done, interrupted (the workers are stopped too) or a worker failed (its exit status)."""
    tick_seconds = config.workers.poll_seconds
    procs = [
        subprocess.Popen(WORKER_COMMAND, env=worker_env(i, device, config)) for i in range(count)
    ]
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
        return Stop(Ended.INTERRUPTED)
    failed = [p.returncode for p in procs if p.returncode != 0]
    return Stop(Ended.WORKER_FAILED, f"exit {failed[0]}") if failed else Stop(Ended.DONE)
