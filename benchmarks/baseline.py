"""Does the search beat hand-tuning? The default study against the seed article's CNN, one run.

    python -m benchmarks.baseline [--keep DIR] [--beside "FLAGS"] [--fixed] [-- EXTRA FLAGS]

1. The article's network (3 conv blocks 32/64/128 with BatchNorm and max-pool, fc 1152-512-512
   with BatchNorm1d and dropout 0.4; SGD lr 0.01 momentum 0.9, batch 64, 5 epochs at a fixed
   rate) trained in this process on all 60,000 labelled images, as the article did, by the
   project's trainer (tensor-resident, the same speed settings as every trial), then evaluated
   once on the 10,000 test images. Timed from the first batch to the test accuracy.
2. ``python -m search.run --trials 50`` with every default (MLflow on, its default
   ``sqlite:///mlflow.db``) in a fresh directory, timed from start to exit, which includes
   imports, loading the data, the final fit and registering the champion; the champion's test
   accuracy is read back from the study.

3. With ``--beside "FLAGS"``: the same study again with FLAGS added (``--precision fp32``: the
   trainer before bf16), and the ratio of the two studies' wall times.
4. With ``--fixed``: the strongest fixed recipe (``benchmarks.anytime.fixed``) trained for the
   default study's own wall time (as many epochs as fit at its own timed pace): is the main
   command worth its time?

All run one after the other on the same machine, never at once. Prints a table and ends with
``study/article time: N.NNx, test accuracy: study 0.9xxx vs article 0.9xxx``. Flags after
``--`` go to every ``search.run`` (to measure a change against the same baseline). Asserts
nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch

from benchmarks.recipes import describe, fixed, fixed_epochs
from data import load_splits
from search.space import ARTICLE, spec_from_params
from search.train import evaluate, fit

ARTICLE_EPOCHS = 5
WARM_UP = 1280  # images: 20 batches of 64, per epoch of the warm-up run


def article(splits) -> tuple[float, float]:
    """(seconds, test accuracy) of the article's network, trained as the article did, after an
    untimed warm-up on a slice (the first batches of a process pay one-off set-up costs that
    the article's own script would not be charged for)."""
    spec = spec_from_params(ARTICLE, epochs=ARTICLE_EPOCHS, seed=0)
    images, labels = splits.train
    fit(spec.model, spec.train, (images[:WARM_UP], labels[:WARM_UP]))
    start = time.perf_counter()
    model, _ = fit(spec.model, spec.train, splits.train_and_val())
    _, accuracy = evaluate(model, *splits.test)
    return time.perf_counter() - start, accuracy


def run_env() -> dict[str, str]:
    """The environment of a ``search.run`` a benchmark starts: this checkout importable, and
    MLflow's own default store (./mlflow.db in its directory), as a new user's run has."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def launch(directory: Path, flags: list[str]) -> tuple[float, str, optuna.Study]:
    """``python -m search.run FLAGS`` in ``directory``, timed from start to exit, its output
    kept in search.log: (seconds, stdout, the study it left)."""
    command = [sys.executable, "-m", "search.run", *flags]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=directory, env=run_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    (directory / "search.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"search.run failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    loaded = optuna.load_study(
        study_name="fashion-mnist", storage=f"sqlite:///{directory}/optuna.db"
    )
    return seconds, done.stdout, loaded


def study(
    directory: Path, extra: list[str], trials: int | None = 50
) -> tuple[float, float, list[str]]:
    """(seconds, champion's test accuracy, summary lines) of the default study of ``trials``
    (``None``: no ``--trials`` flag) in ``directory``."""
    cap = ["--trials", str(trials)] if trials is not None else []
    seconds, stdout, loaded = launch(directory, [*cap, *extra])
    lines = [line for line in stdout.splitlines() if line and "\r" not in line]
    return seconds, loaded.user_attrs["test_accuracy"]["value"], lines


def studied(keep: Path | None, name: str, flags: list[str], rows: list) -> tuple[float, float]:
    """The default study (with ``flags``) in ``keep/name`` or a temporary directory: its
    summary printed, its row added; (seconds, test accuracy)."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = keep / name if keep else Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        seconds, accuracy, lines = study(directory, flags)
    print("\n".join(f"    {line}" for line in lines), flush=True)
    rows.append((f"`search.run {' '.join(['--trials 50', *flags])}`", seconds, accuracy))
    return seconds, accuracy


def split_extra(argv: list[str]) -> tuple[list[str], list[str]]:
    """A benchmark's own flags, and those after ``--`` that go to every ``search.run``."""
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1 :]


def main(argv: list[str] | None = None) -> int:
    own, extra = split_extra(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.baseline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--keep", type=Path, default=None, help="run the study here and keep it")
    p.add_argument("--beside", default=None, help="flags of a second study run beside it")
    p.add_argument("--fixed", action="store_true", help="the fixed recipe at the study's time")
    args = p.parse_args(own)
    torch.set_num_threads(os.cpu_count() or 1)
    threads = torch.get_num_threads()
    print(
        f"hardware: {platform.machine()}, {os.cpu_count()} CPU cores, {threads} torch threads; "
        f"torch {torch.__version__}; one run each"
    )
    splits = load_splits(device="cpu")
    a_seconds, a_accuracy = article(splits)
    print(
        f"article CNN, {ARTICLE_EPOCHS} epochs on 60,000 images: {a_seconds:.0f} s, "
        f"test accuracy {a_accuracy:.4f}",
        flush=True,
    )
    del splits
    rows = [("article CNN, 5 epochs (hand-tuned)", a_seconds, a_accuracy)]
    s_seconds, s_accuracy = studied(args.keep, "default", extra, rows)
    if args.beside:
        flags = args.beside.split()
        b_seconds, _ = studied(args.keep, "beside", [*flags, *extra], rows)
        print(f"default study / study with {args.beside}: {s_seconds / b_seconds:.2f}x the time")
    if args.fixed:
        splits = load_splits(device="cpu")
        per_epoch, _ = fixed(splits, 1)
        epochs = fixed_epochs(s_seconds, per_epoch, 0.0)
        f_seconds, f_accuracy = fixed(splits, epochs)
        rows.append((f"{describe(epochs)} (the study's time)", f_seconds, f_accuracy))
    print("\n| run | wall time | test accuracy |\n| --- | --- | --- |")
    for what, seconds, accuracy in rows:
        print(f"| {what} | {seconds:.0f} s | {accuracy:.4f} |")
    print(
        f"study/article time: {s_seconds / a_seconds:.2f}x, "
        f"test accuracy: study {s_accuracy:.4f} vs article {a_accuracy:.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
