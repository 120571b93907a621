"""``--precision {auto,fp32,bf16}``: bf16 autocast where the CPU computes bf16 natively.

On a CPU with native bf16 (AVX512-BF16 or AMX: Intel Sapphire Rapids and later, AMD Zen 4 and
later) training and evaluation run under ``torch.autocast("cpu", dtype=torch.bfloat16)`` in
channels-last order, the weights, the optimizer's state and the saved champion in fp32
(autocast casts per op; BatchNorm and the loss stay in fp32 by themselves): measured on 2 such
cores, the article's CNN trains 1.6x and evaluates 2x faster at the same accuracy
(docs/measured.md). Where bf16 is emulated it is slower than fp32, so ``auto`` decides once per
process from what the CPU says it has (``/proc/cpuinfo``'s flags), and only where that cannot be
read from a timed probe of a few batches. On a GPU ``auto`` is fp32 with TF32 matrix products
(``search.device.configure_cuda``: bf16 measured no faster there at these batch sizes).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
NATIVE_BF16 = {"avx512_bf16", "amx_bf16"}  # /proc/cpuinfo flags: bf16 in hardware
PROBE_GAIN = 1.1  # bf16 must be this much faster in the probe to be chosen


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The CPU's feature flags, or ``None`` where they cannot be read (not Linux)."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.partition(":")[2].split())
    except OSError:
        return None
    return None


def choose(
    asked: str, device: torch.device, flags: set[str] | None, probe: Callable[[], bool]
) -> str:
    """'bf16' or 'fp32' for ``asked`` on ``device``: ``auto`` is bf16 on a CPU whose ``flags``
    include native bf16, fp32 on one whose flags do not and on a GPU; ``probe()`` decides only
    where the flags are unknown."""
    if asked != "auto":
        return asked
    if device.type != "cpu":
        return "fp32"
    if flags is not None:
        return "bf16" if flags & NATIVE_BF16 else "fp32"
    return "bf16" if probe() else "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a forward pass and its loss run in."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bf16_is_faster(batches: int = 10) -> bool:
    """A few training batches of a small CNN (channels-last) timed in fp32 and under bf16
    autocast here: whether bf16 is at least ``PROBE_GAIN`` times faster."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(32, 64, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Flatten(),
            torch.nn.Linear(64 * 14 * 14, 10),
        ).to(memory_format=torch.channels_last)
        x = torch.rand(64, 1, 28, 28).contiguous(memory_format=torch.channels_last)
        y = torch.randint(10, (64,))
        seconds = {p: _timed(net, x, y, p, batches) for p in ("fp32", "bf16")}
    return seconds["fp32"] >= PROBE_GAIN * seconds["bf16"]


def _timed(net: torch.nn.Module, x, y, precision: str, batches: int) -> float:
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    start = 0.0
    for i in range(batches + 2):  # two untimed: one-off set-up
        if i == 2:
            start = time.perf_counter()
        with autocast(precision, x.device):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start
