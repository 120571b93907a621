"""Speed of one training step and of evaluation, for the settings that could matter on a CPU.

    python -m benchmarks.step [--batches 60] [--compile]

On the real train split, for the seed article's CNN (the space's most expensive point) and a
small CNN (1 block of 16 channels), measures training images/s with the tensors in the default
(NCHW) layout and in channels-last order, with 1 thread and all cores, and evaluation
images/s at batch sizes 128 to 2048. ``--compile`` adds ``torch.compile`` (its compile time
is printed apart from its steady speed: every trial is a new model, so a trial pays it again).
Each figure follows untimed warm-up batches; one run each. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torch.nn.functional as F

from data import load_splits
from models import CNNConfig, build_model
from search.space import WARM_START, model_config

EVAL_BATCHES = (128, 256, 512, 1024, 2048)
WARM_UP = 5


def layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def train_rate(model, images, labels, batch: int, batches: int, channels_last: bool) -> float:
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    start = 0.0
    for i in range(WARM_UP + batches):
        if i == WARM_UP:
            start = time.perf_counter()
        lo = (i * batch) % (len(labels) - batch)
        loss = F.cross_entropy(
            model(layout(images[lo : lo + batch], channels_last)), labels[lo : lo + batch]
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return batches * batch / (time.perf_counter() - start)


def eval_rate(model, images, batch: int, channels_last: bool) -> float:
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory).eval()
    with torch.inference_mode():
        model(layout(images[:batch], channels_last))
        start = time.perf_counter()
        for lo in range(0, len(images), batch):
            model(layout(images[lo : lo + batch], channels_last))
    return len(images) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.step",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--batches", type=int, default=60, help="timed training batches per figure")
    p.add_argument("--batch-size", type=int, default=64, help="training batch (the article's)")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile")
    args = p.parse_args(argv)
    cores = os.cpu_count() or 1
    print(f"hardware: {platform.machine()}, {cores} CPU cores; torch {torch.__version__}")
    splits = load_splits(device="cpu")
    images, labels = splits.train
    val = splits.val[0][:4096]
    nets = {
        "article CNN": model_config(WARM_START),
        "small CNN": CNNConfig(n_layers=1, channels=16),
    }
    for name, config in nets.items():
        print(f"\n{name}: training images/s at batch {args.batch_size}")
        for threads in sorted({1, cores}):
            torch.set_num_threads(threads)
            for cl in (False, True):
                torch.manual_seed(0)
                rate = train_rate(
                    build_model(config), images, labels, args.batch_size, args.batches, cl
                )
                print(
                    f"  {threads} thread(s), {'channels-last' if cl else 'NCHW':13s} {rate:7.0f}"
                )
        torch.set_num_threads(cores)
        if args.compile:
            torch.manual_seed(0)
            model = build_model(config).to(memory_format=torch.channels_last)
            start = time.perf_counter()
            compiled = torch.compile(model)
            train_rate(compiled, images, labels, args.batch_size, 1, True)
            seconds = time.perf_counter() - start
            rate = train_rate(compiled, images, labels, args.batch_size, args.batches, True)
            print(f"  torch.compile, channels-last {rate:7.0f}  (compiling took {seconds:.0f} s)")
        print(f"{name}: evaluation images/s ({cores} threads)")
        model = build_model(config)
        for batch in EVAL_BATCHES:
            rates = [eval_rate(model, val, batch, cl) for cl in (False, True)]
            print(f"  batch {batch:5d}: NCHW {rates[0]:7.0f}, channels-last {rates[1]:7.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
