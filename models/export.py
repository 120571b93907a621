"""A trained network as a model that needs nothing from this project: ``standalone(...)``.

The result is an ``nn.Sequential`` built only from ``torch.nn`` layers, so a pickle of it
loads with torch alone (no class of ours is referenced, and nothing named ``models``, ``data``
or ``search`` is imported), and it is an ordinary module: ``eval()``, ``train()``,
``to(device)``, ``parameters()`` and fine-tuning all work. Its first layer, ``normalize``,
takes raw ``ToTensor`` images (pixels in [0, 1]) to the training normalization: a frozen 1x1
convolution with weight ``1/std`` and bias ``-mean/std``, which is exact in training and in
evaluation mode (a BatchNorm would be neither once trained further).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from models.cnn import CNN
from models.mlp import MLP


def normalizer(mean: float, std: float) -> nn.Conv2d:
    """``(x - mean) / std`` as a frozen 1x1 convolution of the one input channel."""
    layer = nn.Conv2d(1, 1, kernel_size=1)
    with torch.no_grad():
        layer.weight.fill_(1.0 / std)
        layer.bias.fill_(-mean / std)
    layer.requires_grad_(False)  # fine-tuning must not move the input statistics
    return layer


def layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The network's layers in call order, with readable names (``features``, ``head``)."""
    if isinstance(model, CNN):
        return [("features", model.features), ("head", model.head)]
    if isinstance(model, MLP):
        return [("net", model.net)]
    if type(model) is nn.Sequential:  # the seed networks
        return [("net", model)]
    raise ValueError(f"no standalone form for {type(model).__name__}, got {model=}")


def standalone(model: nn.Module, mean: float, std: float) -> nn.Sequential:
    """``normalize`` followed by the network's own layers (shared, not copied), in the
    default memory format, on the CPU, in eval mode."""
    parts = [("normalize", normalizer(mean, std)), *layers(model)]
    plain = nn.Sequential(OrderedDict(parts))
    return plain.to(device="cpu", memory_format=torch.contiguous_format).eval()
