"""Short-horizon bias: does a trial's one-epoch rank predict its rank after a long fit?

    python -m benchmarks.horizon --storage sqlite:///DIR/optuna.db [--study NAME] [--top 10]
                                 [--epochs 5]

Takes the ``--top`` complete trials of a finished study, best first, and trains each
configuration from scratch for ``--epochs`` on the train split (the final fit's recipe for that
length, ``search.recipe``; the trial's seed), then measures validation accuracy on the whole
validation split (the test set stays out of the decision). Prints each configuration's
one-epoch value, its re-run mean where the study has one (``search.winner``), its long-fit
accuracy and seconds per epoch, and Spearman's rank correlation between the one-epoch values
and the long fits (1: the short trials rank exactly as the long fits do; 0: no relation). One
run each; prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import optuna
import torch

from data import load_splits
from search.champion import final_spec
from search.train import evaluate, fit
from search.winner import top_trials


def ranks(values: list[float]) -> list[float]:
    """Average ranks (1 = smallest), ties sharing the mean of their places."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rho: Pearson's correlation of the ranks."""
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra) ** 0.5
    vb = sum((y - mb) ** 2 for y in rb) ** 0.5
    return cov / (va * vb) if va and vb else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.horizon",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--storage", required=True, help="the finished study's storage URL")
    p.add_argument("--study", default="fashion-mnist", help="its name (default: %(default)s)")
    p.add_argument("--top", type=int, default=10, help="configurations (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=5, help="long-fit length (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="the study's --seed (default: 0)")
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"hardware: {platform.machine()}, {os.cpu_count()} CPU cores; torch {torch.__version__}")
    study = optuna.load_study(study_name=args.study, storage=args.storage)
    top = top_trials(study, args.top)
    reruns = study.user_attrs.get("reruns", {})
    splits = load_splits(device="cpu", seed=args.seed)
    print(
        f"top {len(top)} of {args.study!r}, each trained {args.epochs} epochs on the train split\n"
    )
    print("| trial | one epoch | re-run mean | long fit (val) | s/epoch | params |")
    print("| --- | --- | --- | --- | --- | --- |")
    short, long = [], []
    for trial in top:
        spec = final_spec(trial, args.epochs, args.seed)
        start = time.perf_counter()
        model, _ = fit(spec.model, spec.train, splits.train)
        per_epoch = (time.perf_counter() - start) / args.epochs
        accuracy = evaluate(model, *splits.val)[1]
        again = reruns.get(str(trial.number), [])
        mean = f"{(trial.value + sum(again)) / (1 + len(again)):.4f}" if again else "-"
        short.append(trial.value)
        long.append(accuracy)
        params = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
        )
        print(
            f"| #{trial.number} | {trial.value:.4f} | {mean} | {accuracy:.4f} | "
            f"{per_epoch:.0f} | {params} |",
            flush=True,
        )
    rho = spearman(short, long)
    print(f"\nSpearman rank correlation, one epoch vs {args.epochs} epochs: {rho:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
