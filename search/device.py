"""Pick the training device: ``auto`` means cuda, then mps, then cpu."""

from __future__ import annotations

import torch

from search.errors import UserError

DEVICE_TYPES = ("cpu", "cuda", "mps")  # what a device may be (a grid names one of these)
DEVICES = ("auto", *DEVICE_TYPES)  # what --device may say


class DeviceError(UserError, ValueError):
    """The requested device does not exist here; the message is one line for the user."""


def available() -> list[str]:
    """The device types this machine has, the CPU first."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


def resolve_device(name: str) -> torch.device:
    """``--device`` as the device a run trains on, resolved once per run (``auto``: cuda, then
    mps, then cpu); one that is absent here is a ``DeviceError``."""
    if name not in DEVICES:
        raise DeviceError(f"--device must be one of {', '.join(DEVICES)}, got {name!r}")
    here = available()
    cuda, mps = "cuda" in here, "mps" in here
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise DeviceError("--device cuda: no CUDA device is available on this machine")
    if name == "mps" and not mps:
        raise DeviceError("--device mps: no Apple MPS device is available on this machine")
    device = torch.device(name)
    if device.type == "cuda":
        configure_cuda()
    return device


def will_use_cuda(name: str) -> bool:
    """Whether ``--device name`` means the GPU here (for defaults; checks come later)."""
    return name == "cuda" or (name == "auto" and torch.cuda.is_available())


def configure_cuda() -> None:
    """The GPU settings, chosen from ``python -m benchmarks.gpu`` on an H100 (README, Measured):
    TF32 matrix products on (2.35x training on a wide CNN at batch 1024, none lost at batch 64;
    cuDNN's convolutions use TF32 already by default). Left off: bf16 autocast (slower at batch
    64, no faster than TF32 at 1024), cudnn.benchmark (no gain; trial shapes vary) and
    torch.compile (slower at batch 64, and 15-23 s of compiling for every trial's new model)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def describe(device: torch.device) -> str:
    """Human-readable hardware string for summaries and benchmark headers."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
