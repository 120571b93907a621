"""A trained network as a model that needs nothing from this project: ``standalone(...)``.

The result is an ``nn.Sequential`` of ``torch.nn`` layers, so a pickle of it loads with torch
alone (nothing named ``models``, ``data`` or ``search`` is imported), and it is an ordinary
module: ``eval()``, ``train()``, ``to(device)``, ``parameters()`` and fine-tuning all work. Its
first layer, ``normalize``, takes raw ``ToTensor`` images (pixels in [0, 1]) to the training
normalization: a frozen 1x1 convolution with weight ``1/std`` and bias ``-mean/std``, which is
exact in training and in evaluation mode (a BatchNorm would be neither once trained further).

The layers of ours, ``models.blocks.Residual`` and ``ViewAverage`` (test-time augmentation around
the whole model, normalization included), are rebuilt from ``shipped_blocks()``: the same file
loaded as the module ``fashion_search_blocks``, which travels inside the logged model
(``BLOCKS_FILE``), so the pickle names that module and never ``models``.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import OrderedDict
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from models.blocks import Residual, ViewAverage
from models.cnn import CNN
from models.mlp import MLP
from models.resnet import ResNet

BLOCKS_MODULE = "fashion_search_blocks"  # a module name no user project has
BLOCKS_FILE = Path(__file__).with_name("blocks.py")  # self-contained: imports only torch


def shipped_blocks() -> ModuleType:
    """``models/blocks.py`` imported under ``BLOCKS_MODULE`` (once per process: pickle looks a
    class up by its module's name in ``sys.modules``)."""
    if BLOCKS_MODULE not in sys.modules:
        spec = importlib.util.spec_from_file_location(BLOCKS_MODULE, BLOCKS_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[BLOCKS_MODULE] = module
    return sys.modules[BLOCKS_MODULE]


def normalizer(mean: float, std: float) -> nn.Conv2d:
    """``(x - mean) / std`` as a frozen 1x1 convolution of the one input channel."""
    layer = nn.Conv2d(1, 1, kernel_size=1)
    with torch.no_grad():
        layer.weight.fill_(1.0 / std)
        layer.bias.fill_(-mean / std)
    layer.requires_grad_(False)  # fine-tuning must not move the input statistics
    return layer


def layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The network's layers in call order, with readable names (``features``, ``head``); any
    other network is one layer, ``net``."""
    if isinstance(model, CNN | ResNet):
        return [("features", model.features), ("head", model.head)]
    if isinstance(model, MLP):
        return [("net", model.net)]
    return [("net", model)]  # the seed networks, and a user's (``models.user``) as it is


def shippable(module: nn.Module) -> nn.Module:
    """``module`` with every ``Residual`` rebuilt as the shipped class (the layers inside are
    shared, not copied); a tree without one is returned as it is."""
    if not any(isinstance(m, Residual) for m in module.modules()):
        return module
    if isinstance(module, Residual):
        return shipped_blocks().Residual(shippable(module.body))
    if type(module) is nn.Sequential:
        return nn.Sequential(OrderedDict((n, shippable(c)) for n, c in module.named_children()))
    raise ValueError(f"cannot ship a Residual inside {type(module).__name__}")


def standalone(model: nn.Module, mean: float, std: float) -> nn.Module:
    """``normalize`` followed by the network's own layers (shared, not copied), in the
    default memory format, on the CPU, in eval mode; a ``ViewAverage`` stays around it all."""
    if isinstance(model, ViewAverage):
        return shipped_blocks().ViewAverage(standalone(model.net, mean, std)).eval()
    parts = [("normalize", normalizer(mean, std))]
    parts += [(name, shippable(part)) for name, part in layers(model)]
    plain = nn.Sequential(OrderedDict(parts))
    return plain.to(device="cpu", memory_format=torch.contiguous_format).eval()


def needs_blocks(model: nn.Module) -> bool:
    """Whether a standalone model holds shipped blocks (its MLflow model must carry them)."""
    return any(type(m).__module__ == BLOCKS_MODULE for m in model.modules())
