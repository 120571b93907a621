"""A tiny loader over tensors that already live on the training device.

Each epoch draws a fresh permutation from a seeded ``torch.Generator`` (on the CPU, so the order
is the same on every device), and batches are index slices: no per-sample Python work, no
worker processes, no host-to-device copies in the training loop.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class Batches:
    """Iterate ``(images, labels)`` batches; every index appears once per epoch.

    ``shuffle=False`` keeps the stored order (the evaluation case). ``drop_last`` drops a final
    partial batch, which keeps BatchNorm away from a batch of one.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size=}")
        if len(images) != len(labels):
            raise ValueError(f"images and labels differ in length: {len(images)} != {len(labels)}")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.images)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.images.device)
        else:
            order = None
        for i in range(len(self)):
            lo, hi = i * self.batch_size, min((i + 1) * self.batch_size, n)
            if order is None:
                yield self.images[lo:hi], self.labels[lo:hi]
            else:
                idx = order[lo:hi]
                yield self.images[idx], self.labels[idx]
