"""The champion: the model that ends a study, and how it was obtained.

By default the search judges configurations on a short budget (``--epochs``) so that 50 of
them fit in minutes; the best configuration is then trained once more, from scratch, for
``--final-epochs`` on all labelled images (train + validation) with its schedule stretched
over the longer run, shortened to what ``--budget`` leaves: the *final fit*. With
``--final-epochs 0`` (and in grid mode) the champion is the best trial's own weights, from
this process's memory, from its MLflow checkpoint, or retrained (deterministic on a CPU). A
resumed study whose best trial is already the registered champion is not fitted again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import optuna
import torch
from torch import nn

from data import Splits
from models import build_model
from search.budget import Budget, final_epochs_that_fit
from search.objective import BestWeights
from search.space import TrialSpec, spec_from_params
from search.train import StepMetrics, train


@dataclass
class Champion:
    model: nn.Module  # takes normalized images, on the splits' device
    note: str  # how it was obtained, for the summary
    final_epochs: int = 0  # of the final fit, 0 when there was none


def full_params(trial: optuna.trial.FrozenTrial) -> dict:
    """The trial's params, plus those a grid fixed (see ``Objective.params``)."""
    return {**trial.user_attrs.get("fixed_params", {}), **trial.params}


def trial_spec(trial: optuna.trial.FrozenTrial, epochs: int, seed: int) -> TrialSpec:
    """What ``trial`` trained: its params, budget, steps and seed."""
    steps = trial.user_attrs.get("history", [{}])[-1].get("step")
    return spec_from_params(full_params(trial), epochs, seed + trial.number, steps)


def final_fit(
    spec: TrialSpec,
    splits: Splits,
    epochs: int,
    on_epoch: Callable[[StepMetrics], None] | None = None,
) -> nn.Module:
    """Train ``spec`` from scratch (the trial's seed) for ``epochs`` on train + validation,
    one report per epoch."""
    spec = replace(spec, train=replace(spec.train, epochs=epochs, steps=None))
    torch.manual_seed(spec.train.seed)
    model = build_model(spec.model)
    train(model, splits.train_and_val(), spec.train, on_step=on_epoch)
    return model


def epochs_that_fit(
    best: optuna.trial.FrozenTrial, splits: Splits, wanted: int, budget: Budget, end: float
) -> int:
    """``wanted`` final epochs, or fewer if the budget cannot hold them at the best trial's
    measured rate (0: none fit)."""
    if not wanted or budget.seconds is None:
        return wanted
    seconds, images = (best.user_attrs.get(k, 0) for k in ("train_seconds", "train_images"))
    per_epoch = seconds / max(1, images) * (len(splits.train[1]) + len(splits.val[1]))
    return final_epochs_that_fit(per_epoch, wanted, budget.left(), end)


def fitted(
    spec: TrialSpec,
    splits: Splits,
    epochs: int,
    wanted: int,
    trial_number: int,
    on_epoch: Callable[[StepMetrics], None],
) -> Champion:
    start = time.perf_counter()
    model = final_fit(spec, splits, epochs, on_epoch)
    cut = f" of {wanted} (--budget)" if epochs < wanted else ""
    note = (
        f"(final fit of trial #{trial_number}: {epochs}{cut} epochs on train + validation, "
        f"{time.perf_counter() - start:.0f} s)"
    )
    return Champion(model, note, epochs)


def trial_weights(
    best: optuna.trial.FrozenTrial,
    spec: TrialSpec,
    splits: Splits,
    in_memory: BestWeights | None,
    checkpoint: Callable[[], nn.Module | None],
) -> Champion:
    """The best trial's own weights: this process's memory, its checkpoint, or retrained."""
    if in_memory is not None and in_memory.trial_number == best.number:
        model = build_model(in_memory.spec.model)
        model.load_state_dict(in_memory.state)
        return Champion(model.to(splits.device), "(best trial's own weights)")
    model = checkpoint()
    if model is not None:
        return Champion(model.to(splits.device), "(best trial's checkpoint from MLflow)")
    torch.manual_seed(spec.train.seed)
    model = build_model(spec.model)
    train(model, splits.train, spec.train)
    return Champion(model, f"(retrained: trial #{best.number} ran in an earlier process)")


def network_of(shipped: nn.Module) -> nn.Module:
    """A registered standalone model without its ``normalize`` layer: splits are normalized."""
    return nn.Sequential(*list(shipped.children())[1:])
