"""The Pareto study's pruning rule against none, on one seeded study; the front; and how stable
one configuration's latency is here.

    python -m benchmarks.pareto [--trials 50] [--keep DIR] [-- EXTRA SEARCH.RUN FLAGS]

1. The latency of the article's CNN (``search.limits.latency_ms``: median of 30 calls at
   batch 1 on one thread) measured 20 times in a row: median, min, max.
2. ``search.run --pareto latency --trials N`` (every other default, MLflow on), then the same
   with ``--pruner none`` (the rule off), one after the other, same seed: wall time, trials
   pruned, the front of each, and the area each front dominates (accuracy from 0.80 up,
   latency up to the slowest trial seen: larger is better).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import optuna
import torch

from benchmarks.baseline import launch, split_extra
from models import build_model
from search.limits import latency_ms
from search.space import WARM_START, model_config

FLOOR = 0.80  # accuracy below which a point of the front counts for nothing


def stability(times: int = 20) -> list[float]:
    torch.manual_seed(0)
    network = build_model(model_config(WARM_START)).eval()
    return [latency_ms(network, 0.29, 0.35) for _ in range(times)]


def area(points: list[tuple[float, float]], slowest: float) -> float:
    """The area a front dominates: accuracy above ``FLOOR`` times latency below ``slowest``."""
    total, best = 0.0, FLOOR
    for accuracy, latency in sorted(points, key=lambda p: p[1]):  # cheapest first
        if accuracy > best:
            total += (accuracy - best) * (slowest - latency)
            best = accuracy
    return total


def run(directory: Path, flags: list[str]) -> tuple[float, optuna.Study]:
    seconds, _, loaded = launch(directory, flags)
    return seconds, loaded


def main(argv: list[str] | None = None) -> int:
    own, extra = split_extra(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.pareto", description=__doc__)
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--keep", type=Path, default=None)
    args = p.parse_args(own)
    torch.set_num_threads(os.cpu_count() or 1)
    print(
        f"hardware: {platform.machine()}, {os.cpu_count()} CPU cores; torch {torch.__version__}; "
        "one run each",
        flush=True,
    )
    seen = stability()
    print(
        f"latency of the article's CNN, 20 measurements: median {statistics.median(seen):.3f} "
        f"ms, min {min(seen):.3f}, max {max(seen):.3f} (spread {max(seen) / min(seen):.2f}x)",
        flush=True,
    )
    results = {}
    for name, flags in (("rule", []), ("no pruning", ["--pruner", "none"])):
        with tempfile.TemporaryDirectory() as tmp:
            directory = args.keep / name.replace(" ", "-") if args.keep else Path(tmp)
            directory.mkdir(parents=True, exist_ok=True)
            common = ["--pareto", "latency", "--trials", str(args.trials), *extra]
            results[name] = run(directory, [*common, *flags])
        seconds, study = results[name]
        states = [t.state.name for t in study.trials]
        print(f"{name}: {seconds:.0f} s, {states.count('PRUNED')} pruned", flush=True)
        for t in sorted(study.best_trials, key=lambda t: t.values[1]):
            print(f"    #{t.number}: {t.values[0]:.4f}, {t.values[1]:.3f} ms", flush=True)
    slowest = max(t.values[1] for _, study in results.values() for t in study.trials if t.values)
    print("\n| run | wall time | pruned | front points | area dominated |")
    print("| --- | --- | --- | --- | --- |")
    for name, (seconds, study) in results.items():
        points = [tuple(t.values) for t in study.best_trials]
        pruned = sum(t.state.name == "PRUNED" for t in study.trials)
        print(
            f"| {name} | {seconds:.0f} s | {pruned} | {len(points)} | "
            f"{area(points, slowest):.4f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
