"""Is the search worth its time at any budget? The default study against the strongest fixed
recipe for the seed article's CNN, trained for as long as the study ran, in one run.

    python -m benchmarks.anytime [--budgets 1 3 8] [--keep DIR] [-- EXTRA SEARCH.RUN FLAGS]

1. The unit: the article's network trained as the article did (SGD lr 0.01, momentum 0.9,
   batch 64, fixed rate, 5 epochs on all 60,000 labelled images; ``benchmarks.baseline``),
   timed in this run. Budgets are multiples of it (``--budgets``, default 1x, 3x and 8x).
2. For each budget B, one after the other, never at once:
   (a) ``python -m search.run --budget B`` with every default (MLflow on, its default
       ``sqlite:///mlflow.db``, a fresh directory), timed from start to exit; the champion's
       test accuracy is read back from the study;
   (b) the strongest fixed recipe for the article's CNN that ``benchmarks.recipes`` knows
       (``recipes.strongest``: AdamW, cosine, and the regularizers of that length), trained
       in this process for as many epochs as fit B at its own pace (one epoch of it timed
       after the unit), timed from its first batch to its test accuracy (no start-up, no
       tracking: the fixed recipe's side is charged less than the study's);
   (c) at 3x only, ``--sampler random --budget B`` (does the sampler earn its keep?).
3. One table: budget, each side's wall time and test accuracy.

Prints figures; asserts nothing. Flags after ``--`` go to every ``search.run`` (to measure a
change against the same recipe).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.baseline import ARTICLE_EPOCHS, article, split_extra, study
from benchmarks.recipes import describe, fixed, fixed_epochs, strongest
from data import load_splits
from search import recipe

RANDOM_AT = 3  # the budget multiple at which the random sampler is also measured


def searched(budget: float, extra: list[str], keep: Path | None, name: str):
    """(seconds, test accuracy, summary lines) of ``search.run --budget`` in a fresh directory."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = (keep / name) if keep else Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        return study(directory, ["--budget", f"{budget:.0f}s", *extra], trials=None)


def main(argv: list[str] | None = None) -> int:
    own, extra = split_extra(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.anytime",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--budgets", type=float, nargs="+", default=[1, 3, 8], help="multiples")
    p.add_argument("--keep", type=Path, default=None, help="keep each study under DIR")
    p.add_argument(
        "--unit",
        type=float,
        default=None,
        help="seconds of the unit instead of measuring it (a quick try; kept figures measure it)",
    )
    args = p.parse_args(own)
    torch.set_num_threads(os.cpu_count() or 1)
    print(
        f"hardware: {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{torch.get_num_threads()} torch threads; torch {torch.__version__}; one run each",
        flush=True,
    )
    splits = load_splits(device="cpu")
    if args.unit is None:
        unit, unit_accuracy = article(splits)
        print(
            f"unit: the article's CNN, {ARTICLE_EPOCHS} epochs as the article trained it: "
            f"{unit:.0f} s, test accuracy {unit_accuracy:.4f}",
            flush=True,
        )
    else:
        unit = args.unit
        print(f"unit: {unit:.0f} s, given (--unit), not measured", flush=True)
    # (b) is sized at its own pace, not the unit's: AdamW's step costs more than SGD's (sized
    # at the unit's rate, 15 epochs took 372 s of a 306 s budget, 2026-12-01).
    per_epoch, recipe_accuracy = fixed(splits, 1)
    print(
        f"the fixed recipe's own epoch: {per_epoch:.1f} s (test accuracy after it "
        f"{recipe_accuracy:.4f}); the unit's pace would say {unit / ARTICLE_EPOCHS:.1f} s",
        flush=True,
    )
    labelled = len(splits.train[1]) + len(splits.val[1])
    augment = recipe.augment_seconds(splits.train[0], strongest(1)["batch_size"]) * labelled
    rows = []
    for multiple in args.budgets:
        budget = multiple * unit
        runs = [("search.run", ["--budget B"], [])]
        if multiple == RANDOM_AT:
            runs.append(
                ("search.run --sampler random", ["--sampler random"], ["--sampler", "random"])
            )
        for label, _, flags in runs:
            name = f"{multiple:g}x" + ("-random" if flags else "")
            seconds, accuracy, lines = searched(budget, [*flags, *extra], args.keep, name)
            print("\n".join(f"    {line}" for line in lines), flush=True)
            rows.append((multiple, budget, f"`{label} --budget {budget:.0f}s`", seconds, accuracy))
            print(f"{rows[-1]}", flush=True)
        epochs = fixed_epochs(budget, per_epoch, augment)
        seconds, accuracy = fixed(splits, epochs)
        rows.append((multiple, budget, describe(epochs), seconds, accuracy))
        print(f"{rows[-1]}", flush=True)
    print("\n| budget | run | wall time | test accuracy |\n| --- | --- | --- | --- |")
    for multiple, budget, what, seconds, accuracy in rows:
        print(f"| {multiple:g}x ({budget:.0f} s) | {what} | {seconds:.0f} s | {accuracy:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
