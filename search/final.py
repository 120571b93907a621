"""The final fit: the winning configuration trained once more, longer, on train + validation.

The search judges configurations on a short budget (``--epochs``, default 1) so that 50 of
them fit in minutes; the champion is then trained for ``--final-epochs`` on all 60,000
labelled images with the same hyperparameters, its learning-rate schedule stretched over the
longer run, and evaluated once on the held-out test set. Nothing of the search's validation
split is held back any more: the choice is made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from data import Splits
from models import build_model
from search.space import TrialSpec
from search.train import StepMetrics, train


def final_spec(spec: TrialSpec, epochs: int) -> TrialSpec:
    """The trial's configuration with the final budget: one report per epoch."""
    return replace(spec, train=replace(spec.train, epochs=epochs, steps=None))


def final_fit(
    spec: TrialSpec,
    splits: Splits,
    epochs: int,
    on_epoch: Callable[[StepMetrics], None] | None = None,
) -> nn.Module:
    """Train ``spec`` from scratch (the trial's seed) for ``epochs`` on train + validation."""
    spec = final_spec(spec, epochs)
    torch.manual_seed(spec.train.seed)
    model = build_model(spec.model)
    train(model, splits.train_and_val(), spec.train, on_step=on_epoch)
    return model
