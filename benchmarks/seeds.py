"""Robust, not lucky? The default 50-trial study on several seeds, one run each.

    python -m benchmarks.seeds [--seeds 0 1 2] [--keep DIR] [-- EXTRA SEARCH.RUN FLAGS]

Runs ``python -m search.run --trials 50 --seed S`` with every other default (MLflow on, its
default store) in a fresh directory per seed, one after the other, and prints per seed: wall
time, the champion's test accuracy, the summary's winner line (which configuration was chosen
over which, and how far apart its runs were); then the span of the test accuracies in points
(issue 19 asks at most 0.4). ``--seed`` seeds the train/validation split, the sampler and every
trial, so the seeds differ in all three, as two users' runs would.

A study without ``--budget`` is deterministic on the CPU: its accuracies do not depend on what
else the machine runs (its wall times do). Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.baseline import split_extra, study


def winner_line(lines: list[str]) -> str:
    return next((line.strip() for line in lines if line.strip().startswith("winner:")), "")


def main(argv: list[str] | None = None) -> int:
    own, extra = split_extra(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.seeds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one study each")
    p.add_argument("--keep", type=Path, default=None, help="keep each study in DIR/seed-S")
    args = p.parse_args(own)
    print(
        f"hardware: {platform.machine()}, {os.cpu_count()} CPU cores; torch {torch.__version__}; "
        f"one run per seed",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            directory = (args.keep or Path(tmp)) / f"seed-{seed}"
            directory.mkdir(parents=True, exist_ok=True)
            seconds, accuracy, lines = study(directory, ["--seed", str(seed), *extra])
            rows.append((seed, seconds, accuracy, winner_line(lines)))
            print(f"seed {seed}: {seconds:.0f} s, test {accuracy:.4f}; {rows[-1][3]}", flush=True)
    print("\n| seed | wall time | test accuracy | winner |\n| --- | --- | --- | --- |")
    for seed, seconds, accuracy, line in rows:
        print(f"| {seed} | {seconds:.0f} s | {accuracy:.4f} | {line} |")
    accuracies = [row[2] for row in rows]
    span = (max(accuracies) - min(accuracies)) * 100
    print(f"\nspan of the champions' test accuracies: {span:.2f} points over {len(rows)} seeds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
