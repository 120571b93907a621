"""Does ``torch.compile`` pay for a final fit (one network trained for minutes)?

    python -m benchmarks.compile [--batches 300]

The article's CNN at batch 64 (AdamW, the precision ``auto`` picks here), trained by the
product's ``search.train.train`` on the real train split:
eager, then ``torch.compile``d (inductor). For each: the seconds of the first batch (compile
time included), and images/s over the next ``--batches`` after it; then the epochs of 60,000
images after which the compiled network is ahead (compile time over the per-epoch saving).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace

import torch

from data import load_splits
from models import build_model
from search import precision
from search.space import RECIPE, model_config, spec_from_params
from search.train import train

BATCH = 64
EPOCH = 60_000  # a final fit's epoch: train + validation


def timed(model: torch.nn.Module, images, labels, spec, batches: int) -> tuple[float, float]:
    """(seconds of a first pass of 2 batches, compile time included; images/s of a pass of
    ``batches`` batches after it), both by ``search.train.train``."""
    config = replace(spec.train, batch_size=BATCH, drop_last=True)
    start = time.perf_counter()
    train(model, (images[: 2 * BATCH], labels[: 2 * BATCH]), config)
    first = time.perf_counter() - start
    subset = (images[: batches * BATCH], labels[: batches * BATCH])
    start = time.perf_counter()
    train(model, subset, config)
    return first, batches * BATCH / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compile", description=__doc__)
    p.add_argument("--batches", type=int, default=300)
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    chosen = precision.choose("auto", torch.device("cpu"), precision.cpu_flags(), lambda: False)
    print(
        f"hardware: {platform.machine()}, {os.cpu_count()} CPU cores; torch {torch.__version__}; "
        f"{chosen}; one run each",
        flush=True,
    )
    images, labels = load_splits(device="cpu").train
    spec = spec_from_params(RECIPE, epochs=1, seed=0, precision=chosen)
    rows = {}
    for name in ("eager", "torch.compile"):
        torch.manual_seed(0)
        model = build_model(model_config(RECIPE)).to(memory_format=torch.channels_last)
        if name == "torch.compile":
            model = torch.compile(model)
        rows[name] = timed(model, images, labels, spec, args.batches)
        first, rate = rows[name]
        print(f"  {name:14s} first batch {first:6.1f} s, then {rate:8,.0f} images/s", flush=True)
    (_, eager), (compile_seconds, compiled) = rows["eager"], rows["torch.compile"]
    saving = EPOCH / eager - EPOCH / compiled  # seconds per epoch
    if saving > 0:
        print(
            f"compiled: {compiled / eager:.2f}x eager; its compile time is won back after "
            f"{compile_seconds / saving:.1f} epochs of 60,000 images"
        )
    else:
        print(f"compiled: {compiled / eager:.2f}x eager: it never pays")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
