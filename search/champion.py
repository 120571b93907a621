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
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import optuna
from torch import nn

from data import Splits
from models import build_model
from search import recipe
from search.budget import FIT_MARGIN, MARGIN, Budget, final_epochs_that_fit
from search.objective import BestWeights
from search.space import TrialSpec, spec_from_params
from search.train import StepMetrics, fit, seconds_per_image

if TYPE_CHECKING:
    from search.pipeline import Run


@dataclass
class Champion:
    model: nn.Module  # takes normalized images, on the splits' device
    note: str  # how it was obtained, for the summary
    final_epochs: float = 0  # of the final fit, 0 when there was none


def full_params(trial: optuna.trial.FrozenTrial) -> dict:
    """The trial's params, plus those a grid fixed (see ``Objective.params``)."""
    return {**trial.user_attrs.get("fixed_params", {}), **trial.params}


def trial_spec(trial: optuna.trial.FrozenTrial, epochs: int, seed: int) -> TrialSpec:
    """What ``trial`` trained: its params, budget, steps and seed."""
    steps = trial.user_attrs.get("history", [{}])[-1].get("step")
    return spec_from_params(full_params(trial), epochs, seed + trial.number, steps)


def final_spec(trial: optuna.trial.FrozenTrial, epochs: float, seed: int) -> TrialSpec:
    """What the final fit of ``trial`` trains: its params plus the regularizers of a run of
    ``epochs`` (``search.recipe``), from the trial's seed, one report per epoch."""
    params = recipe.with_length(full_params(trial), epochs)
    return spec_from_params(params, epochs, seed + trial.number)


def regularizers(spec: TrialSpec) -> dict:
    """What the final fit's length switched on (``search.recipe``), as params."""
    return {"augment": spec.train.augment, "label_smoothing": spec.train.label_smoothing}


def final_fit(
    spec: TrialSpec, splits: Splits, on_epoch: Callable[[StepMetrics], None] | None = None
) -> tuple[nn.Module, float]:
    """Train ``spec`` from scratch on train + validation; the model and the epochs it trained
    (fewer than ``spec``'s when its time limit, ``spec.train.seconds``, ran out first)."""
    model, result = fit(spec.model, spec.train, splits.train_and_val(), on_step=on_epoch)
    return model, result.history[-1].epoch if result.history else 0.0


def epochs_that_fit(
    best: optuna.trial.FrozenTrial,
    splits: Splits,
    wanted: int | None,
    budget: Budget,
    end: float,
    measured: bool = True,
) -> float:
    """``wanted`` final epochs (``None``: as many as the budget holds), or fewer if the budget
    cannot hold them (0: none fit). ``measured``: the epoch's cost is timed here on a few
    batches of the winner's network (a trial's own rate includes its validation and the first
    trial's warm-up, and overstates the final fit's by up to 1.6x, measured); else the trial's
    rate, a rough bound for choosing among candidates."""
    if wanted == 0 or budget.seconds is None:
        return wanted or 0
    labelled = len(splits.train[1]) + len(splits.val[1])
    params = full_params(best)
    if measured:
        spec = spec_from_params(params, 1, 0)
        per_epoch = seconds_per_image(spec.model, spec.train, splits.train) * labelled
    else:
        seconds, images = (best.user_attrs.get(k, 0) for k in ("train_seconds", "train_images"))
        per_epoch = seconds / max(1, images) * labelled
    augmenting: list[float] = []  # crop and flip's cost here, timed once if a length needs it

    def extra(epochs: float) -> float:
        if not recipe.by_length(epochs)["augment"]:
            return 0.0
        if not augmenting:
            batch = int(params.get("batch_size", 64))
            augmenting.append(recipe.augment_seconds(splits.train[0], batch) * labelled)
        return augmenting[0]

    margin = FIT_MARGIN if measured else MARGIN
    return final_epochs_that_fit(per_epoch, wanted, budget.left(), end, extra, margin)


def fitted(
    spec: TrialSpec,
    splits: Splits,
    wanted: int | None,
    trial_number: int,
    on_epoch: Callable[[StepMetrics], None],
) -> Champion:
    """The final fit of ``spec`` (see ``final_fit``) and the summary's words for it."""
    start = time.perf_counter()
    model, trained = final_fit(spec, splits, on_epoch)
    epochs = spec.train.epochs
    cut = f" of {wanted} (--budget)" if wanted is not None and epochs < wanted else ""
    clock = ""
    if round(trained, 1) < epochs:  # the machine was slower than the fit was priced at
        clock = f", {trained:.1f} trained: its schedule followed --budget's clock"
    note = (
        f"(final fit of trial #{trial_number}: {epochs:g}{cut} epochs on train + validation"
        f"{recipe_words(spec)}{clock}, {time.perf_counter() - start:.0f} s)"
    )
    return Champion(model, note, trained)


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


# --- the decision, for a run (search.pipeline.Run) ---------------------------------------------


def choose(run: Run, best: optuna.trial.FrozenTrial) -> Champion:
    """The champion for the winner ``best``: the registered one if it already is this trial
    (a resumed study), else its final fit for what the budget leaves of ``--final-epochs``,
    else its own weights."""
    registered = _registered(run, best)
    if registered is not None:
        return registered
    wanted = run.config.training.final_epochs
    run.budget.reserve = 0.0  # what is left is the final fit's, less the end's own reserve
    epochs = epochs_that_fit(best, run.splits, wanted, run.budget, run.end_seconds)
    if not epochs:
        return _own_weights(run, best, wanted)
    return _final_fit(run, best, epochs, wanted)


def _registered(run: Run, best: optuna.trial.FrozenTrial) -> Champion | None:
    if run.tracking is None:
        return None
    version = run.tracking.registry.is_champion(run.study.study_name, best.number)
    if version is None:
        return None
    shipped = run.tracking.registry.load(version)
    if shipped is None:  # MLflow failed on the way: fit it again
        return None
    model = network_of(shipped).to(run.splits.device)
    note = f"(registered champion version {version.version}, fitted by an earlier run: no new "
    return Champion(model, note + "final fit)")


def _own_weights(run: Run, best: optuna.trial.FrozenTrial, wanted: int | None) -> Champion:
    config, tracking = run.config, run.tracking
    spec = trial_spec(best, config.training.epochs, config.study.seed)
    run_id = best.user_attrs.get("mlflow_run_id", "")
    checkpoint = (lambda: tracking.checkpoints.load(run_id)) if tracking else (lambda: None)
    chosen = trial_weights(best, spec, run.splits, run.objective.best, checkpoint)
    if wanted:
        chosen.note += f" (no time left for --final-epochs {wanted})"
    elif wanted is None:
        chosen.note += " (no time left for a final fit)"
    return chosen


def _final_fit(
    run: Run, best: optuna.trial.FrozenTrial, epochs: float, wanted: int | None
) -> Champion:
    spec = final_spec(best, epochs, run.config.study.seed)
    runs = run.tracking.runs if run.tracking is not None else None
    if runs is not None:
        images = len(run.splits.train[1]) + len(run.splits.val[1])
        params = {**full_params(best), **regularizers(spec), "train_images": images}
        runs.start_final(best.number, params, epochs)

    def on_epoch(m: StepMetrics) -> None:
        run.progress.final_epoch(m, epochs)
        if runs is not None:
            runs.log_final_epoch(m)

    # Under --budget the fit gets what is left before the end's reserve, whatever its epochs
    # cost: priced on a 2 s timing, a whole fit ran 1.21-1.3x slower (docs/measured.md).
    if run.budget.seconds is not None:
        seconds = max(1.0, run.budget.left() - run.end_seconds)
        spec = replace(spec, train=replace(spec.train, seconds=seconds))
    return fitted(spec, run.splits, wanted, best.number, on_epoch)
