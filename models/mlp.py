"""Multi-layer perceptron: flatten, ``n_layers`` x (Linear, [BatchNorm], ReLU, [Dropout]), Linear.

The tutorials' 784-1000-10 and 784-1000-512-10 nets are ``n_layers=1, hidden_dim=1000`` and a
two-layer variant; here every hidden layer has the same width to keep the space small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from models.validate import check_common, check_int


@dataclass(frozen=True)
class MLPConfig:
    arch: ClassVar[str] = "mlp"
    n_layers: int = 2  # two hidden layers: the tutorials found a third adds nothing
    hidden_dim: int = 256  # wide enough for ~88% on Fashion-MNIST, small enough for a CPU
    batch_norm: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_int(self, "n_layers", 1, 16)
        check_int(self, "hidden_dim", 1, 8192)
        check_common(self)


class MLP(nn.Module):
    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = 28 * 28
        for _ in range(config.n_layers):
            layers.append(nn.Linear(width, config.hidden_dim, bias=not config.batch_norm))
            if config.batch_norm:
                layers.append(nn.BatchNorm1d(config.hidden_dim))
            layers.append(nn.ReLU())
            if config.dropout:
                layers.append(nn.Dropout(config.dropout))
            width = config.hidden_dim
        layers.append(nn.Linear(width, 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
