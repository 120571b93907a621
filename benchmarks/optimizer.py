"""Is torch's fused Adam worth it on this CPU? The training step of the space's networks with
AdamW as torch builds it by default against its fused kernel, side by side in one process.

    python -m benchmarks.optimizer [--batches 40] [--rounds 3]

For each network (the article's and three other points of the CPU space) and each precision
(fp32, and bf16 autocast where the CPU has it natively), one AdamW training step at batch 64 on
random batches of the real train split is timed as forward, backward and optimizer step, after
5 untimed batches; default and fused are interleaved ``--rounds`` times and the median is
printed in ms per batch, with fused's speed-up of the whole batch. This chose
``search.train.make_optimizer``'s fused Adam on a CPU (docs/measured.md). Asserts nothing.
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
from search.precision import NATIVE_BF16, autocast, cpu_flags
from search.space import ARTICLE_NET, model_config

BATCH = 64
NETWORKS = {  # blocks x channels, head width x layers
    "3x32, 512x2 (the article's)": ARTICLE_NET,
    "2x32, 512x2": {**ARTICLE_NET, "n_layers": 2},
    "1x32, 512x1": {**ARTICLE_NET, "n_layers": 1, "head_layers": 1},
    "2x16, 128x1": {
        **ARTICLE_NET,
        "n_layers": 2,
        "channels": 16,
        "head_dim": 128,
        "head_layers": 1,
    },
}


def step_ms(net: dict, precision: str, fused: bool, data, batches: int) -> tuple[float, ...]:
    """Mean ms per batch of (forward, backward, optimizer step) over ``batches`` batches."""
    images, labels = data
    torch.manual_seed(0)
    model = build_model(model_config(net)).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-3, **({"fused": True} if fused else {})
    )
    spent = [0.0, 0.0, 0.0]
    for i in range(5 + batches):
        index = torch.randint(len(labels), (BATCH,))
        marks = [time.perf_counter()]
        x = images[index].contiguous(memory_format=torch.channels_last)
        with autocast(precision, x.device):
            loss = F.cross_entropy(model(x), labels[index])
        marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(time.perf_counter())
        optimizer.step()
        marks.append(time.perf_counter())
        if i >= 5:
            for k in range(3):
                spent[k] += marks[k + 1] - marks[k]
    return tuple(1000 * s / batches for s in spent)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.optimizer", description=__doc__)
    p.add_argument("--batches", type=int, default=40, help="timed batches per run")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    flags = cpu_flags() or set()
    precisions = ["fp32", "bf16"] if flags & NATIVE_BF16 else ["fp32"]
    print(
        f"hardware: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores "
        f"({', '.join(sorted(flags & NATIVE_BF16)) or 'no native bf16'}), "
        f"{torch.get_num_threads()} torch threads; torch {torch.__version__}; "
        f"{args.rounds} rounds, median"
    )
    data = load_splits(device="cpu").train
    print(
        "| network | precision | default: forward, backward, step ms | fused step ms"
        " | batch, default / fused |"
    )
    print("| --- | --- | --- | --- | --- |")
    for name, net in NETWORKS.items():
        for precision in precisions:
            runs: dict[bool, list[tuple[float, ...]]] = {False: [], True: []}
            for _ in range(args.rounds):
                for fused in runs:
                    runs[fused].append(step_ms(net, precision, fused, data, args.batches))
            default, fused = (
                tuple(statistics.median(r[k] for r in runs[f]) for k in range(3))
                for f in (False, True)
            )
            print(
                f"| {name} | {precision} | {', '.join(f'{v:.1f}' for v in default)} | "
                f"{fused[2]:.1f} | {sum(default):.1f} / {sum(fused):.1f} ms "
                f"({sum(default) / sum(fused):.2f}x) |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
