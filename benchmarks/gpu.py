"""GPU settings, each measured on and off: TF32, bf16 autocast, cudnn.benchmark, torch.compile.

    python -m benchmarks.gpu [--batches 200]

On the real train split, on the GPU, for the seed article's CNN and a wide CNN (3 blocks of 64
channels, a 1024x2 head) at batch 64 and 1024: training images/s after untimed warm-up
batches, synchronized, first in plain fp32 (TF32 off, cudnn.benchmark off), then with one
setting on at a time, then all of them. ``torch.compile``'s compile time is printed apart (every
trial is a new model and pays it again). One run each; prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time

import torch
import torch.nn.functional as F

from data import load_splits
from models import CNNConfig, build_model
from search.space import WARM_START, model_config

WARM_UP = 10
SETTINGS = ("fp32", "tf32", "cudnn.benchmark", "bf16 autocast", "torch.compile", "all")


def configure(setting: str) -> None:
    tf32 = setting in ("tf32", "all")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = setting in ("cudnn.benchmark", "all")


def rate(model, images, labels, batch: int, batches: int, bf16: bool) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    start = 0.0
    for i in range(WARM_UP + batches):
        if i == WARM_UP:
            torch.cuda.synchronize()
            start = time.perf_counter()
        lo = (i * batch) % (len(labels) - batch)
        x = images[lo : lo + batch].contiguous(memory_format=torch.channels_last)
        with autocast:
            loss = F.cross_entropy(model(x), labels[lo : lo + batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize()
    return batches * batch / (time.perf_counter() - start)


def measure(config, setting: str, images, labels, batch: int, batches: int) -> str:
    configure(setting)
    torch.manual_seed(0)
    model = build_model(config).to("cuda", memory_format=torch.channels_last).train()
    bf16 = setting in ("bf16 autocast", "all")
    note = ""
    if setting in ("torch.compile", "all"):
        start = time.perf_counter()
        model = torch.compile(model)
        rate(model, images, labels, batch, 1, bf16)
        note = f" (compiling {time.perf_counter() - start:.0f} s)"
    return f"{rate(model, images, labels, batch, batches, bf16):9.0f}{note}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__)
    p.add_argument("--batches", type=int, default=200, help="timed training batches per figure")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks.gpu needs a CUDA GPU; none here")
        return 2
    print(
        f"hardware: {platform.machine()}, {torch.cuda.get_device_name()}; "
        f"torch {torch.__version__}; one run each"
    )
    splits = load_splits(device="cuda")
    images, labels = splits.train
    nets = {
        "article CNN": model_config(WARM_START),
        "wide CNN": CNNConfig(n_layers=3, channels=64, head_dim=1024, head_layers=2),
    }
    for name, config in nets.items():
        for batch in (64, 1024):
            print(f"\n{name}, batch {batch}: training images/s")
            for setting in SETTINGS:
                figure = measure(config, setting, images, labels, batch, args.batches)
                print(f"  {setting:16s} {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
