"""The tutorial's two named networks (deeplizard's ``NetworkFactory``), weights seeded.

conv 1->6 5x5, ReLU, pool; [BatchNorm2d(6)]; conv 6->12 5x5, ReLU, pool; flatten;
fc 192->120, ReLU, [BatchNorm1d(120)]; fc 120->60, ReLU; fc 60->10. Both are built right after
``torch.manual_seed(50)``, so two builds of one name have identical initial weights. We seed a
forked RNG so that building a network does not reset the caller's random stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from models.validate import check

SEED_NETWORKS = ("no_batch_norm", "batch_norm")
INIT_SEED = 50  # NetworkFactory's seed: same weights as the tutorial's runs


@dataclass(frozen=True)
class SeedNetConfig:
    arch: ClassVar[str] = "seed"
    network: str = "no_batch_norm"

    def __post_init__(self) -> None:
        check(self.network in SEED_NETWORKS, self, "network", f"must be one of {SEED_NETWORKS}")


def build_seed_network(config: SeedNetConfig) -> nn.Sequential:
    bn = config.network == "batch_norm"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        layers = [
            nn.Conv2d(1, 6, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            *([nn.BatchNorm2d(6)] if bn else []),
            nn.Conv2d(6, 12, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Flatten(start_dim=1),
            nn.Linear(12 * 4 * 4, 120),
            nn.ReLU(),
            *([nn.BatchNorm1d(120)] if bn else []),
            nn.Linear(120, 60),
            nn.ReLU(),
            nn.Linear(60, 10),
        ]
        return nn.Sequential(*layers)
