"""Pick the training device: ``auto`` means cuda, then mps, then cpu."""

from __future__ import annotations

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(ValueError):
    """The requested device does not exist here; the message is one line for the user."""


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise DeviceError(f"--device must be one of {', '.join(DEVICES)}, got {name!r}")
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise DeviceError("--device cuda: no CUDA device is available on this machine")
    if name == "mps" and not mps:
        raise DeviceError("--device mps: no Apple MPS device is available on this machine")
    return torch.device(name)


def describe(device: torch.device) -> str:
    """Human-readable hardware string for summaries and benchmark headers."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
