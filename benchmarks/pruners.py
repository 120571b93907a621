"""Which default pruner? The same seeded TPE study under each pruner, side by side.

    python -m benchmarks.pruners [--trials 16] [--epochs 4] [--train-size 5000] [--seed 0]
        [--step-images 5000]

For each of ``hyperband``, ``median``, ``successive-halving`` and ``none`` it runs
``python -m search.run`` on a fresh SQLite study in a temp dir (no MLflow, same seed, same
subset, no final fit) and prints wall time, steps trained, trials pruned and the best
validation accuracy.
A good default prunes much of the epoch budget and loses little of the best accuracy. Prints
figures; asserts nothing. TPE's choices depend on which trials were pruned, so the studies
diverge after the first prune: compare the totals, not trial by trial.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import optuna
import torch

from search.samplers import PRUNERS


def run(pruner: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/optuna.db"
        command = [
            sys.executable,
            "-m",
            "search.run",
            "--trials",
            str(args.trials),
            "--epochs",
            str(args.epochs),
            "--train-size",
            str(args.train_size),
            "--step-images",
            str(args.step_images),
            "--final-epochs",
            "0",
            "--seed",
            str(args.seed),
            "--pruner",
            pruner,
            "--storage",
            storage,
            "--study",
            "pruners",
            "--no-mlflow",
            "--quiet",
        ]
        start = time.perf_counter()
        subprocess.run(command, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        trials = optuna.load_study(study_name="pruners", storage=storage).get_trials()
    complete = [t.value for t in trials if t.state.name == "COMPLETE"]
    return {
        "seconds": seconds,
        "steps": sum(len(t.intermediate_values) for t in trials),
        "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "best": max(complete) if complete else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.pruners", description=__doc__)
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--step-images", type=int, default=5000)
    p.add_argument("--train-size", type=int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(f"hardware: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}")
    print(
        f"{args.trials} TPE trials, --epochs {args.epochs} --train-size {args.train_size}, "
        f"seed {args.seed}, one run per pruner"
    )
    budget = args.trials * max(1, round(args.epochs * args.train_size / args.step_images))
    print(f"{'pruner':>20} {'seconds':>8} {'steps':>10} {'pruned':>7} {'best val':>9}")
    for pruner in PRUNERS:
        r = run(pruner, args)
        print(
            f"{pruner:>20} {r['seconds']:8.0f} {r['steps']:4d}/{budget:<5d} "
            f"{r['pruned']:7d} {r['best']:9.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
