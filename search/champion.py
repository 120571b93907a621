"""The champion: the model that ends a study, and how it was obtained.

By default the search judges configurations on a short budget (``--epochs``) so that 50 of
them fit in minutes; the winning configuration (``search.winner``) is then trained once more,
from scratch, for ``--final-epochs`` on all labelled images (train + validation) with its
schedule stretched over the longer run and the regularizers its length calls for
(``search.recipe``), or under ``--budget`` for as many epochs as fit: the *final fit*. With
``--final-epochs 0`` (and in grid mode) the champion is the best trial's own weights, from
this process's memory, from its MLflow checkpoint, or retrained (deterministic on a CPU). A
resumed study whose best trial is already the registered champion is not fitted again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from torch import nn

from data import Splits
from models import build_model
from search import recipe
from search.budget import Budget, final_epochs_that_fit
from search.objective import BestWeights
from search.space import TrialSpec, spec_from_params
from search.train import StepMetrics, fit


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


def final_spec(trial: optuna.trial.FrozenTrial, epochs: int, seed: int) -> TrialSpec:
    """What the final fit of ``trial`` trains: its params plus the regularizers of a run of
    ``epochs`` (``search.recipe``), from the trial's seed, one report per epoch."""
    params = recipe.with_length(full_params(trial), epochs)
    return spec_from_params(params, epochs, seed + trial.number)


def regularizers(spec: TrialSpec) -> dict:
    """What the final fit's length switched on (``search.recipe``), as params."""
    return {"augment": spec.train.augment, "label_smoothing": spec.train.label_smoothing}


def final_fit(
    spec: TrialSpec, splits: Splits, on_epoch: Callable[[StepMetrics], None] | None = None
) -> nn.Module:
    """Train ``spec`` from scratch on train + validation."""
    model, _ = fit(spec.model, spec.train, splits.train_and_val(), on_step=on_epoch)
    return model


def epochs_that_fit(
    best: optuna.trial.FrozenTrial, splits: Splits, wanted: int | None, budget: Budget, end: float
) -> int:
    """``wanted`` final epochs (``None``: as many as the budget holds), or fewer if the budget
    cannot hold them at the trial's measured rate (0: none fit)."""
    if wanted == 0 or budget.seconds is None:
        return wanted or 0
    seconds, images = (best.user_attrs.get(k, 0) for k in ("train_seconds", "train_images"))
    labelled = len(splits.train[1]) + len(splits.val[1])
    per_epoch = seconds / max(1, images) * labelled
    augmenting: list[float] = []  # crop and flip's cost here, timed once if a length needs it

    def extra(epochs: int) -> float:
        if not recipe.by_length(epochs)["augment"]:
            return 0.0
        if not augmenting:
            batch = int(full_params(best).get("batch_size", 64))
            augmenting.append(recipe.augment_seconds(splits.train[0], batch) * labelled)
        return augmenting[0]

    return final_epochs_that_fit(per_epoch, wanted, budget.left(), end, extra)


def fitted(
    spec: TrialSpec,
    splits: Splits,
    wanted: int | None,
    trial_number: int,
    on_epoch: Callable[[StepMetrics], None],
) -> Champion:
    start = time.perf_counter()
    model = final_fit(spec, splits, on_epoch)
    epochs = spec.train.epochs
    cut = f" of {wanted} (--budget)" if wanted is not None and epochs < wanted else ""
    note = (
        f"(final fit of trial #{trial_number}: {epochs}{cut} epochs on train + validation"
        f"{recipe_words(spec)}, {time.perf_counter() - start:.0f} s)"
    )
    return Champion(model, note, epochs)


def recipe_words(spec: TrialSpec) -> str:
    """``, with crop/flip and label smoothing 0.1``, or nothing for a plain run."""
    words = ["crop/flip"] if spec.train.augment else []
    if spec.train.label_smoothing:
        words.append(f"label smoothing {spec.train.label_smoothing:g}")
    return f", with {' and '.join(words)}" if words else ""


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
    model, _ = fit(spec.model, spec.train, splits.train)
    return Champion(model, f"(retrained: trial #{best.number} ran in an earlier process)")


def network_of(shipped: nn.Module) -> nn.Module:
    """A registered standalone model without its ``normalize`` layer: splits are normalized."""
    return nn.Sequential(*list(shipped.children())[1:])
