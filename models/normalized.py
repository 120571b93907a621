"""Wrap a trained classifier so it takes raw ``ToTensor`` images (floats in [0, 1]).

The search normalizes data once with the train split's mean/std; a model shipped to users must
apply that itself, so they need nothing from this project to use it.
"""

from __future__ import annotations

import torch
from torch import nn


class Normalized(nn.Module):
    def __init__(self, model: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.model = model
        # Buffers travel with the state dict and follow ``.to(device)``.
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)
