"""Residual network for 28x28 images, the shape of the fast-training ResNet-9-like recipes:
a stem conv at full resolution, then ``n_layers`` stages of (2x2 max pool, 3x3 conv to the
stage's width, BatchNorm, ReLU, one residual block of two conv-BN-ReLU), then a head: global
average pool, [Dropout], Linear(10).

Widths start at ``channels`` in the stem and double per stage (28 -> 14 -> 7 -> 3 pixels).
Pooling comes before each stage's conv, so every conv runs at the smaller size: with
``channels=16`` and 2 stages a forward pass costs about 9 M multiply-adds, the seed article's
CNN about 8 M. BatchNorm is always on: residual stacks without it need far smaller rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from models.blocks import Residual
from models.validate import check_common, check_int


@dataclass(frozen=True)
class ResNetConfig:
    arch: ClassVar[str] = "resnet"
    batch_norm: ClassVar[bool] = True  # always: see the module docstring
    n_layers: int = 2  # stages after the stem: 28 -> 14 -> 7 pixels
    channels: int = 16  # the stem's width; each stage doubles it
    dropout: float = 0.0  # before the classifier

    def __post_init__(self) -> None:
        check_int(self, "n_layers", 1, 3)
        check_int(self, "channels", 1, 256)
        check_common(self)


def conv_bn(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()]


class ResNet(nn.Module):
    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        width = config.channels
        layers: list[nn.Module] = conv_bn(1, width)
        for _ in range(config.n_layers):
            layers += [nn.MaxPool2d(2), *conv_bn(width, 2 * width)]
            width *= 2
            layers.append(Residual(nn.Sequential(*conv_bn(width, width), *conv_bn(width, width))))
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if config.dropout:
            head.append(nn.Dropout(config.dropout))
        head.append(nn.Linear(width, 10))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
