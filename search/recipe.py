"""What a training run adds to its configuration by its length: regularizers that pay only
when training is long.

A trial trains one epoch, where augmentation and label smoothing cost accuracy; a final fit
of many epochs overfits without them. Measured on the seed article's CNN, AdamW, cosine
(``python -m benchmarks.recipes --epochs 5 10 20``; docs/measured.md): the switches below are
where each began to pay. A configuration that names ``augment`` or ``label_smoothing`` itself
(a grid may) keeps its own value.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from data.augment import crop_flip

# Epochs from which each pays (docs/measured.md): crop and flip cost accuracy at 5 epochs (0.9147
# against 0.9287) and at 10 (0.9270 against 0.9338), and gained at 20 (bf16, seed 0: 0.9355
# against 0.9327; 0.9404 scored as the champion is, averaging its views, models.ViewAverage);
# label smoothing gained at 10 (0.9354).
AUGMENT_FROM = 20  # random crop +-2 px and horizontal flip on the device
SMOOTH_FROM = 10
LABEL_SMOOTHING = 0.1  # the usual value


def by_length(epochs: float) -> dict[str, Any]:
    """The regularizers a run of ``epochs`` trains with."""
    return {
        "augment": epochs >= AUGMENT_FROM,
        "label_smoothing": LABEL_SMOOTHING if epochs >= SMOOTH_FROM else 0.0,
    }


def with_length(params: dict[str, Any], epochs: float) -> dict[str, Any]:
    """``params`` plus what its length adds; what ``params`` names itself stays."""
    return {**by_length(epochs), **params}


def augment_seconds(images: torch.Tensor, batch_size: int, batches: int = 8) -> float:
    """Seconds per image that crop and flip add here, timed on a few batches of ``images``. The
    cost is per image whatever the network, so a small network pays relatively more (measured:
    about 25 us an image on 2 CPU cores, 3% of the article's CNN, 25% of a 1-block one)."""
    generator = torch.Generator().manual_seed(0)
    batch = images[:batch_size]
    crop_flip(batch, generator)  # the first call pays one-off set-up
    start = time.perf_counter()
    for _ in range(batches):
        crop_flip(batch, generator)
    if images.device.type == "cuda":
        torch.cuda.synchronize(images.device)
    return (time.perf_counter() - start) / (batches * len(batch))
