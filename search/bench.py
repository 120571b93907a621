"""Throughput benchmark: the tutorial's data path against tensor-resident batches.

    python -m search.bench [--batch-size 128] [--device auto] [--network no_batch_norm]

In one process, trains the same network (the tutorial's seeded CNN by default, identical
initial weights for both) for one epoch on the 50,000-image train split (a) the tutorial way,
torchvision ``FashionMNIST`` + ``ToTensor`` + ``Normalize`` + ``DataLoader``, and (b) with
``data.Batches`` over tensors already on the device, and prints samples/s of each, the
hardware, torch version and batch size, ending with ``speedup: N.NNx``. It prints figures;
it asserts nothing.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import platform
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F

from data import Batches, DataError, load_splits, locate_data_dir
from data.fashion_mnist import FILES
from models import SEED_NETWORKS, SeedNetConfig, build_model
from search.device import DeviceError, describe, resolve_device

WARM_UP_BATCHES = 20  # enough for cuDNN to pick its kernels; a fraction of a second on a CPU


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m search.bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--batch-size", type=int, default=128, help="the issue's reference batch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--network", choices=SEED_NETWORKS, default="no_batch_norm")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers for (a)")
    p.add_argument("--data-dir", default=None, help="directory with the four IDX files")
    return p.parse_args(argv)


def run_epoch(model, batches: Iterable, device: torch.device) -> tuple[int, float]:
    """Train one epoch; returns (samples, seconds). ``non_blocking`` copies are no-ops for
    tensors already on ``device``, so (a) and (b) run the very same loop."""
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)  # the tutorial's RunManager loop
    model.train()
    samples = 0
    start = time.perf_counter()
    for images, labels in batches:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        samples += len(labels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return samples, time.perf_counter() - start


def warm_up(config: SeedNetConfig, batches: Batches, device: torch.device) -> None:
    """A few untimed steps first: CUDA context, cuDNN algorithm choice and the allocator's
    first blocks would otherwise be charged to whichever path happens to run first."""
    model = build_model(config).to(device)
    run_epoch(model, itertools.islice(batches, WARM_UP_BATCHES), device)


def tutorial_loader(data_dir: Path, root: Path, mean: float, std: float, args):
    """torchvision's dataset reads uncompressed files from ``root/FashionMNIST/raw``."""
    import torchvision
    from torchvision import transforms

    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        source = data_dir / f"{name}.gz"
        blob = gzip.open(source).read() if source.exists() else (data_dir / name).read_bytes()
        (raw / name).write_bytes(blob)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    dataset = torchvision.datasets.FashionMNIST(str(root), train=True, transform=transform)
    # The tutorial trains on all 60,000; use the same 50,000 as (b) for a like-for-like rate.
    subset = torch.utils.data.Subset(dataset, range(50_000))
    return torch.utils.data.DataLoader(
        subset,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.num_workers,
        pin_memory=args.device_obj.type == "cuda",
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        args.device_obj = device = resolve_device(args.device)
        data_dir = locate_data_dir(args.data_dir)
        splits = load_splits(data_dir, device=device)
    except (DataError, DeviceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"hardware: {describe(device)}, {platform.processor() or platform.machine()}")
    print(f"torch {torch.__version__}, batch size {args.batch_size}, network {args.network}")
    config = SeedNetConfig(args.network)
    b_batches = Batches(*splits.train, args.batch_size, shuffle=True, seed=0)
    warm_up(config, b_batches, device)
    with tempfile.TemporaryDirectory() as tmp:
        loader = tutorial_loader(data_dir, Path(tmp), splits.mean, splits.std, args)
        a = run_epoch(build_model(config).to(device), loader, device)
    b = run_epoch(build_model(config).to(device), b_batches, device)
    rate_a, rate_b = a[0] / a[1], b[0] / b[1]
    print(f"(a) torchvision + DataLoader: {rate_a:10.0f} samples/s ({a[1]:.2f} s, 1 epoch)")
    print(f"(b) tensor-resident batches:  {rate_b:10.0f} samples/s ({b[1]:.2f} s, 1 epoch)")
    print(f"speedup: {rate_b / rate_a:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
