"""bf16 against fp32 on this CPU, side by side in one process: the product's trainer against a
plain bf16 channels-last loop over the same tensors, and evaluation.

    python -m benchmarks.precision [--batches 150] [--rounds 3]
    python -m benchmarks.precision --accuracy [--epochs 5 20] [--seeds 0 1 2]

The seed article's CNN at batch 64 (AdamW) on random batches of the real train split, resident
in memory: (a) a plain loop, ``torch.autocast("cpu", bfloat16)`` around the forward pass and
the loss, channels-last; (b) ``search.train.train`` with ``precision="bf16"``; (c) the same
trainer in fp32. Then ``search.train.evaluate`` on the 10,000 validation images in fp32 and in
bf16. Each is timed ``--rounds`` times, interleaved (a, b, c, a, b, c, ...), after one untimed
warm-up each; the median is printed, and the ratios the issue names: trainer bf16 / plain
bf16 (at least 0.9), trainer bf16 / trainer fp32, evaluation bf16 / fp32 (at least 2.5).

``--accuracy``: the article's CNN on the warm-start recipe (``search.space.RECIPE`` with what
its length adds, ``search.recipe``), trained on all 60,000 labelled images as a final fit is,
then scored on the 10,000 test images, in fp32 and in bf16 (the bf16 model also scored in
fp32, as the champion is served), for each length and seed (seeds interleaved, fp32 then
bf16): each run's test accuracy and seconds, then the mean per length.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from data import load_splits
from models import build_model
from search import recipe
from search.precision import NATIVE_BF16, cpu_flags
from search.space import ARTICLE_NET, RECIPE, model_config, spec_from_params
from search.train import TrainConfig, evaluate, train

BATCH = 64


def plain_bf16(images: torch.Tensor, labels: torch.Tensor) -> float:
    """Images/s of the plainest bf16 loop: a channels-last model, autocast, AdamW."""
    torch.manual_seed(0)
    model = build_model(model_config(ARTICLE_NET)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
    model.train()
    order = torch.randperm(len(labels))
    start = time.perf_counter()
    for at in range(0, len(labels) - BATCH + 1, BATCH):
        index = order[at : at + BATCH]
        x = images[index].contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return len(labels) // BATCH * BATCH / (time.perf_counter() - start)


def trainer(images: torch.Tensor, labels: torch.Tensor, precision: str) -> float:
    """Images/s of ``search.train.train`` on the same images, one epoch, no validation."""
    torch.manual_seed(0)
    model = build_model(model_config(ARTICLE_NET))
    config = TrainConfig(
        optimizer="adamw", lr=3e-3, weight_decay=0.05, batch_size=BATCH, epochs=1,
        schedule="cosine", drop_last=True, precision=precision,
    )  # fmt: skip
    start = time.perf_counter()
    train(model, (images, labels), config)
    return len(labels) // BATCH * BATCH / (time.perf_counter() - start)


def evaluation(model, images, labels, precision: str) -> float:
    start = time.perf_counter()
    evaluate(model, images, labels, precision)
    return len(labels) / (time.perf_counter() - start)


def accuracy(splits, epochs: list[int], seeds: list[int]) -> None:
    """The recipe in fp32 and bf16: test accuracy and seconds per run, means per length."""
    print("| epochs | seed | fp32 test | fp32 s | bf16 test | bf16 s | bf16, scored in fp32 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    means = {}
    for length in epochs:
        for seed in seeds:
            row = []
            for precision in ("fp32", "bf16"):
                params = recipe.with_length(RECIPE, length)
                spec = spec_from_params(params, length, seed, precision=precision)
                start = time.perf_counter()
                torch.manual_seed(seed)
                model = build_model(spec.model)
                train(model, splits.train_and_val(), spec.train)
                seconds = time.perf_counter() - start
                _, test = evaluate(model, *splits.test, precision)
                means.setdefault((length, precision), []).append(test)
                row += [f"{test:.4f}", f"{seconds:.0f}"]
            # The champion is served in fp32: the bf16-trained model scored as it would be.
            _, served = evaluate(model, *splits.test)
            means.setdefault((length, "served"), []).append(served)
            row.append(f"{served:.4f}")
            print(f"| {length} | {seed} | {' | '.join(row)} |", flush=True)
    for length in epochs:
        fp32, bf16, served = (
            statistics.fmean(means[length, p]) for p in ("fp32", "bf16", "served")
        )
        print(
            f"{length} epochs, mean of {len(seeds)} seeds: fp32 {fp32:.4f}, bf16 {bf16:.4f} "
            f"({(bf16 - fp32) * 100:+.2f} points), bf16 scored in fp32 {served:.4f} "
            f"({(served - fp32) * 100:+.2f})"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.precision", description=__doc__)
    p.add_argument("--batches", type=int, default=150, help="batches per timed run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--accuracy", action="store_true", help="test accuracy, fp32 against bf16")
    p.add_argument("--epochs", type=int, nargs="+", default=[5, 20])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    flags = cpu_flags() or set()
    print(
        f"hardware: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores "
        f"({', '.join(sorted(flags & NATIVE_BF16)) or 'no native bf16'}), "
        f"{torch.get_num_threads()} torch threads; torch {torch.__version__}; "
        f"{args.rounds} rounds, median"
    )
    splits = load_splits(device="cpu")
    if args.accuracy:
        accuracy(splits, args.epochs, args.seeds)
        return 0
    images, labels = (t[: args.batches * BATCH] for t in splits.train)
    runs = {
        "plain bf16 loop": lambda: plain_bf16(images, labels),
        "search.train bf16": lambda: trainer(images, labels, "bf16"),
        "search.train fp32": lambda: trainer(images, labels, "fp32"),
    }
    torch.manual_seed(0)
    net = build_model(model_config(ARTICLE_NET)).to(memory_format=torch.channels_last)
    val = splits.val
    runs["evaluate fp32"] = lambda: evaluation(net, *val, "fp32")
    runs["evaluate bf16"] = lambda: evaluation(net, *val, "bf16")
    for run in runs.values():  # warm-up: one-off set-up costs
        run()
    seen = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            seen[name].append(run())
    rate = {name: statistics.median(values) for name, values in seen.items()}
    for name, value in rate.items():
        spread = ", ".join(f"{v:,.0f}" for v in seen[name])
        print(f"  {name:20s} {value:9,.0f} images/s  ({spread})")
    print(
        f"trainer bf16 / plain bf16: {rate['search.train bf16'] / rate['plain bf16 loop']:.2f}; "
        f"trainer bf16 / fp32: {rate['search.train bf16'] / rate['search.train fp32']:.2f}x; "
        f"evaluation bf16 / fp32: {rate['evaluate bf16'] / rate['evaluate fp32']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
