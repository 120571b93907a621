"""Does a long-running worker grow with the trial count? Peak RSS over N small trials.

    python -m benchmarks.memory [--trials 50]

Runs one in-process study (``search.run.main``, --epochs 1 --train-size 2000, no MLflow) in a
temp dir while a thread samples this process's RSS twice a second; afterwards each sample is
matched to the trials finished by then. Prints RSS after the 1st and every 10th trial and the
peak (``ru_maxrss``). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import threading
import time

import optuna
import torch


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    p.add_argument("--trials", type=int, default=50)
    args = p.parse_args(argv)
    from search.run import main as run

    samples: list[tuple[float, float]] = []  # (unix time, RSS MB): the thread only reads /proc
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            samples.append((time.time(), rss_mb()))

    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/optuna.db"
        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        flags = ["--epochs", "1", "--train-size", "2000", "--no-mlflow", "--quiet"]
        code = run(
            ["--trials", str(args.trials), "--storage", storage, "--study", "memory", *flags]
        )
        stop.set()
        thread.join()
        trials = optuna.load_study(study_name="memory", storage=storage).get_trials()
    ends = sorted(t.datetime_complete.timestamp() for t in trials if t.datetime_complete)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"hardware: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}")
    print(f"{args.trials} trials, --epochs 1 --train-size 2000, one process, exit {code}")
    for n, end in enumerate(ends, start=1):
        before = [mb for t, mb in samples if t <= end]
        if before and (n % 10 == 0 or n == 1):
            print(f"  after {n:3d} finished trials: RSS {before[-1]:7.1f} MB")
    print(f"peak RSS: {peak:.1f} MB")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
