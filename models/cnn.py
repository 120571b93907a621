"""Convolutional network: ``n_layers`` blocks of 3x3 conv, [BatchNorm], ReLU, and 2x2 max
pooling while the feature map is at least 6 pixels wide (28 -> 14 -> 7 -> 3, then no more),
then a head: flatten, ``head_layers`` x (Linear(``head_dim``), [BatchNorm1d], ReLU, Dropout),
Linear(10).

Channels start at ``channels`` and double per block (capped at 8x): the usual trade of spatial
size for depth. The seed article's hand-tuned CNN is exactly
``CNNConfig(n_layers=3, channels=32, batch_norm=True, dropout=0.4, head_dim=512,
head_layers=2)``: conv 32/64/128, fc 1152-512-512-10 with BatchNorm1d and dropout 0.4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from models.validate import check_common, check_int

MIN_POOL_SIZE = 6  # pooling a 3x3 map would throw away most of it


@dataclass(frozen=True)
class CNNConfig:
    arch: ClassVar[str] = "cnn"
    n_layers: int = 2  # two blocks reach ~91% in 5 epochs in the article
    channels: int = 32  # the article's first block width
    batch_norm: bool = True  # the seed notes measured BatchNorm as a clear gain
    dropout: float = 0.0
    head_dim: int = 128  # wide enough that the head is never the bottleneck at 2 blocks
    head_layers: int = 1  # hidden fully connected layers; the article uses 2 of 512

    def __post_init__(self) -> None:
        check_int(self, "n_layers", 1, 8)
        check_int(self, "channels", 1, 512)
        check_int(self, "head_dim", 1, 8192)
        check_int(self, "head_layers", 0, 4)
        check_common(self)


class CNN(nn.Module):
    def __init__(self, config: CNNConfig) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        size, in_ch = 28, 1
        for i in range(config.n_layers):
            out_ch = config.channels * 2 ** min(i, 3)
            blocks.append(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=not config.batch_norm))
            if config.batch_norm:
                blocks.append(nn.BatchNorm2d(out_ch))
            blocks.append(nn.ReLU())
            if size >= MIN_POOL_SIZE:
                blocks.append(nn.MaxPool2d(2))
                size //= 2
            in_ch = out_ch
        self.features = nn.Sequential(*blocks)
        head: list[nn.Module] = [nn.Flatten()]
        width = in_ch * size * size
        for _ in range(config.head_layers):
            head.append(nn.Linear(width, config.head_dim, bias=not config.batch_norm))
            if config.batch_norm:
                head.append(nn.BatchNorm1d(config.head_dim))
            head += [nn.ReLU(), nn.Dropout(config.dropout)]
            width = config.head_dim
        head.append(nn.Linear(width, 10))
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
