"""Workers as separate hosts on one PostgreSQL study: trials per hour, and the wait a killed
host's trial has before its retry.

    python -m benchmarks.hosts [--hosts 1 2] [--kills 3] [--train-size 10000]

Each host is ``python -m search.run`` in its own UTS and pid namespaces (``unshare``: its own
host name, pid 1), as a worker on another machine would be, sharing PostgreSQL on 127.0.0.1
(a fresh database per run, dropped afterwards; trust auth) and this machine's cores
(``--threads cores/K``). No MLflow, ``--trials-only`` (the trials, not the end of the study).

1. Throughput: a 12-point grid (arch x batch_size x n_layers), so every run trains exactly
   the same configurations, on 1 and on 2 hosts; wall time from the first start to the last
   exit, and trials/hour.
2. Recovery: two hosts on a TPE study with the default heartbeat (10 s, grace 30 s); host B
   is SIGKILLed once its trial has reported a step. Measured from the kill: when host A marks
   that trial FAIL, and when its retry (same params) starts. Stale trials are failed when a
   worker next asks for a trial, so the wait is the grace plus what is left of A's own trial.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import optuna
import torch

GRID = {"arch": ["mlp", "cnn"], "batch_size": [64, 128, 256], "n_layers": [1, 2]}
ADMIN = "postgresql://postgres@127.0.0.1:5432"  # trust auth on this machine


@contextlib.contextmanager
def database(admin: str) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"fs_hosts_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{admin}/{name}"
    finally:
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def as_host(host: str, args: list[str], cwd: Path) -> subprocess.Popen:
    """``python -m search.run ARGS`` with host name ``host`` and its own pid space; killing the
    returned process kills it (``--kill-child``)."""
    command = shlex.join([sys.executable, "-m", "search.run", *args])
    inner = f"hostname {shlex.quote(host)} && exec {command}"
    namespaces = ["unshare", "--uts", "--pid", "--mount-proc", "--kill-child"]
    return subprocess.Popen(
        [*namespaces, "sh", "-c", inner], cwd=cwd, stdout=subprocess.DEVNULL, env=os.environ
    )


def common(storage: str, threads: int, train_size: int) -> list[str]:
    return [
        "--storage", storage, "--train-size", str(train_size), "--threads", str(threads),
        "--no-mlflow", "--quiet", "--trials-only", "--no-warm-start",
    ]  # fmt: skip


def throughput(hosts: int, train_size: int, admin: str) -> float:
    """Seconds for K hosts to run the 12-point grid."""
    threads = max(1, (os.cpu_count() or 1) // hosts)
    with database(admin) as storage, tempfile.TemporaryDirectory() as tmp:
        grid = Path(tmp) / "grid.json"
        grid.write_text(json.dumps(GRID))
        args = [*common(storage, threads, train_size), "--grid", str(grid), "--epochs", "1"]
        start = time.perf_counter()
        procs = [as_host(f"host-{i}", args, Path(tmp)) for i in range(hosts)]
        codes = [p.wait() for p in procs]
        seconds = time.perf_counter() - start
        if any(codes):
            raise SystemExit(f"a host failed: exit statuses {codes}")
        done = optuna.load_study(study_name=_grid_study(storage), storage=storage)
        assert sum(t.state.is_finished() for t in done.trials) == math.prod(
            map(len, GRID.values())
        )
        return seconds


def _grid_study(storage: str) -> str:
    return optuna.get_all_study_names(storage)[0]


def running_of(storage: str, host: str) -> optuna.trial.FrozenTrial | None:
    """Host ``host``'s running trial once it has reported a step."""
    try:
        trials = optuna.load_study(study_name="kill", storage=storage).trials
    except KeyError:
        return None
    for t in trials:
        if t.state.name == "RUNNING" and t.intermediate_values:
            if t.user_attrs.get("worker", "").startswith(f"{host}:"):
                return t
    return None


def recovery(train_size: int, admin: str) -> tuple[float, float]:
    """(seconds from the kill to FAIL, to the retry's start) for one SIGKILLed host."""
    with database(admin) as storage, tempfile.TemporaryDirectory() as tmp:
        args = [*common(storage, 1, train_size), "--study", "kill", "--trials", "12"]
        args += ["--epochs", "2"]
        a, b = as_host("host-a", args, Path(tmp)), as_host("host-b", args, Path(tmp))
        try:
            while (victim := running_of(storage, "host-b")) is None:
                assert b.poll() is None, "host B ended before it could be killed"
                time.sleep(0.2)
            b.send_signal(signal.SIGKILL)
            killed = datetime.now()
            b.wait()
            failed = retried = None
            while retried is None:
                assert a.poll() is None or failed, "host A ended without retrying"
                study = optuna.load_study(study_name="kill", storage=storage)
                trial = study.trials[victim.number]
                if trial.state.name == "FAIL" and failed is None:
                    failed = trial.datetime_complete
                retries = [
                    t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number
                ]
                if retries and retries[0].datetime_start is not None:
                    retried = retries[0].datetime_start
                time.sleep(0.2)
        finally:
            for p in (a, b):
                p.kill()
                p.wait()
        return (failed - killed).total_seconds(), (retried - killed).total_seconds()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.hosts", description=__doc__)
    p.add_argument("--hosts", type=int, nargs="+", default=[1, 2], help="values of K")
    p.add_argument("--kills", type=int, default=3, help="SIGKILLed hosts to time")
    p.add_argument("--train-size", type=int, default=10_000, help="training images")
    p.add_argument("--admin", default=ADMIN, help="PostgreSQL server (trust auth)")
    args = p.parse_args(argv)
    trials = math.prod(len(values) for values in GRID.values())
    print(
        f"{datetime.now():%Y-%m-%d}; {platform.machine()}, {os.cpu_count()} cores; torch "
        f"{torch.__version__}; PostgreSQL on 127.0.0.1; --train-size {args.train_size}"
    )
    print(f"throughput: {trials} grid trials of 1 epoch, one run each")
    rates = {}
    for hosts in args.hosts:
        seconds = throughput(hosts, args.train_size, args.admin)
        rates[hosts] = trials / seconds * 3600
        ratio = rates[hosts] / rates[args.hosts[0]]
        threads = max(1, (os.cpu_count() or 1) // hosts)
        print(
            f"  {hosts} host(s) x {threads} thread(s): {seconds:6.1f} s, "
            f"{rates[hosts]:5.0f} trials/hour ({ratio:.2f}x)"
        )
    print("recovery: host B SIGKILLed mid-trial, heartbeat 10 s, grace 30 s (from the kill)")
    for i in range(args.kills):
        to_fail, to_retry = recovery(args.train_size, args.admin)
        print(
            f"  kill {i + 1}: FAIL after {to_fail:5.1f} s, retry started after {to_retry:5.1f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
