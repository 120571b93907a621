"""Trials per hour with 1 and 2 local workers on the same fixed work.

    python -m benchmarks.workers [--epochs 2] [--train-size 5000]

The work is a 12-point grid (arch x batch_size x n_layers), so both runs train exactly the
same 12 configurations; each run uses ``--workers K --threads 1`` on a fresh SQLite study in a
temp dir, no MLflow. Prints wall time and trials/hour for K = 1 and 2, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

GRID = {"arch": ["mlp", "cnn"], "batch_size": [64, 128, 256], "n_layers": [1, 2]}


def run(workers: int, epochs: int, train_size: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        grid = Path(tmp) / "grid.json"
        grid.write_text(json.dumps(GRID))
        command = [
            sys.executable,
            "-m",
            "search.run",
            "--grid",
            str(grid),
            "--epochs",
            str(epochs),
            "--train-size",
            str(train_size),
            "--workers",
            str(workers),
            "--threads",
            "1",
            "--no-mlflow",
            "--quiet",
        ]
        start = time.perf_counter()
        subprocess.run(command, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.workers", description=__doc__)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-size", type=int, default=5000)
    args = p.parse_args(argv)
    trials = math.prod(len(values) for values in GRID.values())
    print(f"hardware: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}")
    print(f"{trials} grid trials, --epochs {args.epochs} --train-size {args.train_size}")
    rates = {}
    for workers in (1, 2):
        seconds = run(workers, args.epochs, args.train_size)
        rates[workers] = trials / seconds * 3600
        print(
            f"  {workers} worker(s) x 1 thread: {seconds:6.1f} s, "
            f"{rates[workers]:6.0f} trials/hour"
        )
    print(f"ratio 2 vs 1 workers: {rates[2] / rates[1]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
