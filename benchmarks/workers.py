"""Trials per hour with K local workers on the same fixed work.

    python -m benchmarks.workers [--epochs 2] [--train-size 5000] [--workers 1 2] [--device cpu]

The work is a 12-point grid (arch x batch_size x n_layers), so every run trains exactly the
same 12 configurations; each run uses ``--workers K --threads cores/K`` on a fresh SQLite study
in a temp dir, no MLflow. Prints wall time and trials/hour for each K, and each ratio to K=1.
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


def run(workers: int, epochs: int, train_size: int, device: str) -> float:
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
            str(max(1, (os.cpu_count() or 1) // workers)),
            "--device",
            device,
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
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="values of K")
    p.add_argument("--device", default="cpu", help="cpu or cuda (K workers share one GPU)")
    args = p.parse_args(argv)
    trials = math.prod(len(values) for values in GRID.values())
    print(f"hardware: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}")
    print(f"{trials} grid trials, --epochs {args.epochs} --train-size {args.train_size}")
    rates = {}
    for workers in args.workers:
        seconds = run(workers, args.epochs, args.train_size, args.device)
        rates[workers] = trials / seconds * 3600
        ratio = rates[workers] / rates[args.workers[0]]
        print(
            f"  {workers} worker(s) x {max(1, (os.cpu_count() or 1) // workers)} thread(s) on "
            f"{args.device}: {seconds:6.1f} s, {rates[workers]:6.0f} trials/hour ({ratio:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
