"""The one layer of ours that a network may hold: ``Residual``, ``x + body(x)``.

This file imports only torch and is self-contained on purpose: when a champion with residual
blocks is logged, it travels inside the MLflow model as ``fashion_search_blocks.py`` (a module
name no user project has), and the pickled network refers to ``fashion_search_blocks.Residual``
(see ``models.export``). So a registered model loads with torch and mlflow alone, beside a
user's own ``models`` package.
"""

from __future__ import annotations

import torch
from torch import nn


class Residual(nn.Module):
    """``x + body(x)``: ``body`` keeps the shape (a ResNet block without its downsampling)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)
