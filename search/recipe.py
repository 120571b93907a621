"""What a training run adds to its configuration by its length: regularizers that pay only
when training is long.

A trial trains one epoch, where augmentation and label smoothing cost accuracy; a final fit
of many epochs overfits without them. Measured on the seed article's CNN, AdamW, cosine
(``python -m benchmarks.recipes --epochs 5 10 20``; docs/measured.md): the switches below are
where each began to pay. A configuration that names ``augment`` or ``label_smoothing`` itself
(a grid may) keeps its own value.
"""

from __future__ import annotations

from typing import Any

AUGMENT_FROM = 10  # epochs; random crop +-2 px and horizontal flip on the device
SMOOTH_FROM = 10  # epochs
LABEL_SMOOTHING = 0.1  # the usual value
# Crop and flip cost this much more per epoch than plain batches (gather on a CPU, measured).
AUGMENT_COST = 1.10


def by_length(epochs: int) -> dict[str, Any]:
    """The regularizers a run of ``epochs`` trains with."""
    return {
        "augment": epochs >= AUGMENT_FROM,
        "label_smoothing": LABEL_SMOOTHING if epochs >= SMOOTH_FROM else 0.0,
    }


def with_length(params: dict[str, Any], epochs: int) -> dict[str, Any]:
    """``params`` plus what its length adds; what ``params`` names itself stays."""
    return {**by_length(epochs), **params}


def epoch_cost(epochs: int) -> float:
    """Seconds per epoch relative to plain batches, at that length."""
    return AUGMENT_COST if by_length(epochs)["augment"] else 1.0
