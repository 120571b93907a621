"""The champion: the model that ends a study, and how it was obtained.

By default the search judges configurations on a short budget (``--epochs``) so that 50 of
them fit in minutes; the winning configuration (``search.winner``) is then trained once more,
from scratch, for ``--final-epochs`` on all labelled images (train + validation) with its
schedule stretched over the longer run and the regularizers its length calls for
(``search.recipe``), or under ``--budget`` for as many epochs as fit: the *final fit*. A final
fit on crop/flip is scored and served as the mean over ``models.blocks.VIEWS`` views of each
image (``ViewAverage``), unless that puts it over ``--max-latency``. With
``--final-epochs 0`` (and in grid mode) the champion is the best trial's own weights, from
this process's memory, from its MLflow checkpoint, or retrained (deterministic on a CPU). A
resumed study whose best trial is already the registered champion is not fitted again. Where
the weights and the registration live is the hooks' business (``search.hooks``): this module
takes the study, the winner, the data, the budget and the settings, and never names MLflow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import optuna
from torch import nn

from data import Splits
from models import ViewAverage, build_model
from models.blocks import VIEWS
from search import recipe
from search.budget import FIT_MARGIN, MARGIN, Budget, final_epochs_that_fit
from search.hooks import FinalFit, StudyHooks
from search.limits import Limits, latency_ms
from search.space import TrialSpec, full_params, spec_from_params
from search.train import EVAL_BATCH, StepMetrics, evaluate, fit, seconds_per_image


@dataclass(frozen=True)
class EndSettings:
    """What the end of a study needs of the run's settings."""

    epochs: int  # a trial's length, in epochs: re-runs and retraining train as long
    final_epochs: int | None  # the final fit's (None: as many as --budget holds; 0: none)
    reruns: int  # top trials re-run before the choice (search.winner)
    seed: int  # the study's: trial n trained on seed + n
    end_seconds: float  # kept for the end of the run (search.budget)
    precision: str = "fp32"  # the run's (search.precision): re-runs, the final fit, the test
    limits: Limits = field(default_factory=Limits)  # --max-latency, --max-params
    pareto: str | None = None  # --pareto: the winner is a point of the front
    champion_trial: int | None = None  # --champion-trial: this trial, not the winner


@dataclass
class Champion:
    model: nn.Module  # takes normalized images, on the splits' device
    note: str  # how it was obtained, for the summary
    final_epochs: float = 0  # of the final fit, 0 when there was none


def trial_spec(
    trial: optuna.trial.FrozenTrial, epochs: int, seed: int, precision: str = "fp32"
) -> TrialSpec:
    """What ``trial`` trained: its params, budget, steps and seed (in ``precision``)."""
    steps = trial.user_attrs.get("history", [{}])[-1].get("step")
    return spec_from_params(full_params(trial), epochs, seed + trial.number, steps, precision)


def final_spec(
    trial: optuna.trial.FrozenTrial, epochs: float, seed: int, precision: str = "fp32"
) -> TrialSpec:
    """What the final fit of ``trial`` trains: its params plus the regularizers of a run of
    ``epochs`` (``search.recipe``), from the trial's seed, one report per epoch."""
    params = recipe.with_length(full_params(trial), epochs)
    return spec_from_params(params, epochs, seed + trial.number, precision=precision)


def regularizers(spec: TrialSpec) -> dict:
    """What the final fit's length switched on (``search.recipe``), as params."""
    return {"augment": spec.train.augment, "label_smoothing": spec.train.label_smoothing}


def served_views(spec: TrialSpec, limits: Limits, splits: Splits) -> int:
    """How many views of an image the champion of ``spec`` averages: ``VIEWS`` for a fit on
    crop/flip (its network learnt those views: +0.3-0.4 points of test accuracy measured,
    docs/measured.md), unless that many make the served model slower than ``--max-latency``
    (latency does not depend on the weights: timed on a fresh network); else 1."""
    if not spec.train.augment:
        return 1
    if limits.max_latency_ms is None:
        return VIEWS
    averaged = ViewAverage(build_model(spec.model)).eval()
    fast = latency_ms(averaged, splits.mean, splits.std) <= limits.max_latency_ms
    return VIEWS if fast else 1


def views_seconds(spec: TrialSpec, splits: Splits, views: int) -> float:
    """What averaging ``views`` views adds to the champion's test evaluation, timed on a fresh
    network over one evaluation batch (the end's reserve, ``search.budget.END_SECONDS``, was
    measured on one view; six added about 9 s for the article's CNN on 2 CPU cores)."""
    if views == 1:
        return 0.0
    network = ViewAverage(build_model(spec.model).to(splits.device))
    images, labels = (t[:EVAL_BATCH] for t in splits.test)
    start = time.perf_counter()
    evaluate(network, images, labels)
    per_image = (time.perf_counter() - start) / len(labels)
    return per_image * len(splits.test[1]) * (views - 1) / views


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
    settings: EndSettings,
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
        spec = spec_from_params(params, 1, 0, precision=settings.precision)
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
    end = settings.end_seconds
    return final_epochs_that_fit(per_epoch, wanted, budget.left(), end, extra, margin)


def fitted(
    spec: TrialSpec,
    splits: Splits,
    wanted: int | None,
    trial_number: int,
    on_epoch: Callable[[StepMetrics], None],
    views: int = 1,
) -> Champion:
    """The final fit of ``spec`` (see ``final_fit``), averaging ``views`` views of an image
    (``served_views``), and the summary's words for it."""
    start = time.perf_counter()
    model, trained = final_fit(spec, splits, on_epoch)
    if views > 1:
        model = ViewAverage(model)
    epochs = spec.train.epochs
    cut = f" of {wanted} (--budget)" if wanted is not None and epochs < wanted else ""
    clock = ""
    if round(trained, 1) < epochs:  # the machine was slower than the fit was priced at
        clock = f", {trained:.1f} trained: its schedule followed --budget's clock"
    note = (
        f"(final fit of trial #{trial_number}: {epochs:g}{cut} epochs on train + validation"
        f"{recipe_words(spec)}{clock}, {time.perf_counter() - start:.0f} s"
        f"{f'; scored and served as the mean over {views} views' if views > 1 else ''})"
    )
    return Champion(model, note, trained)


def recipe_words(spec: TrialSpec) -> str:
    """``, with crop/flip and label smoothing 0.1``, or nothing for a plain run."""
    words = ["crop/flip"] if spec.train.augment else []
    if spec.train.label_smoothing:
        words.append(f"label smoothing {spec.train.label_smoothing:g}")
    return f", with {' and '.join(words)}" if words else ""


def own_weights(
    best: optuna.trial.FrozenTrial, splits: Splits, settings: EndSettings, hooks: StudyHooks
) -> Champion:
    """The best trial's own weights: as the hooks keep them (this process's memory, its
    checkpoint in MLflow), or retrained (deterministic on a CPU)."""
    found = hooks.weights(best)
    if found is not None:
        model, note = found
        return Champion(model.to(splits.device), note)
    spec = trial_spec(best, settings.epochs, settings.seed, settings.precision)
    model, _ = fit(spec.model, spec.train, splits.train)
    return Champion(model, f"(retrained: trial #{best.number} ran in an earlier process)")


# --- the decision -------------------------------------------------------------------------


def choose(
    study: optuna.Study,
    best: optuna.trial.FrozenTrial,
    splits: Splits,
    budget: Budget,
    settings: EndSettings,
    hooks: StudyHooks,
) -> Champion:
    """The champion for the winner ``best``: the registered one if it already is this trial
    (a resumed study), or the final fit of it that a process which died before registering it
    finished and kept; else its final fit for what the budget leaves of ``--final-epochs``,
    else its own weights."""
    kept = hooks.registered(study, best) or hooks.fitted(study, best)
    if kept is not None:
        model, note = kept
        return Champion(model.to(splits.device), note)
    wanted = settings.final_epochs
    budget.reserve = 0.0  # what is left is the final fit's, less the end's own reserve
    epochs = epochs_that_fit(best, splits, wanted, budget, settings)
    if not epochs:
        chosen = own_weights(best, splits, settings, hooks)
        if wanted:
            chosen.note += f" (no time left for --final-epochs {wanted})"
        elif wanted is None:
            chosen.note += " (no time left for a final fit)"
        return chosen
    chosen, spec = final(study, best, epochs, FitContext(splits, budget, settings, hooks))
    hooks.final_fitted(study, FinalFit(best, spec, chosen.model, chosen.note))
    return chosen


@dataclass(frozen=True)
class FitContext:
    """What a final fit trains with, besides its trial and length."""

    splits: Splits
    budget: Budget
    settings: EndSettings
    hooks: StudyHooks


def final(
    study: optuna.Study, best: optuna.trial.FrozenTrial, epochs: float, on: FitContext
) -> tuple[Champion, TrialSpec]:
    """The final fit of ``best`` for ``epochs``, each epoch told to the hooks; and what it
    trained."""
    spec = final_spec(best, epochs, on.settings.seed, on.settings.precision)
    images = len(on.splits.train[1]) + len(on.splits.val[1])
    views = served_views(spec, on.settings.limits, on.splits)
    params = {**full_params(best), **regularizers(spec), "views": views, "train_images": images}
    on.hooks.final_started(study, best, params, epochs)
    # Under --budget the fit gets what is left before the end's reserve, whatever its epochs
    # cost: priced on a 2 s timing, a whole fit ran 1.21-1.3x slower (docs/measured.md).
    if on.budget.seconds is not None:
        end = on.settings.end_seconds + views_seconds(spec, on.splits, views)
        seconds = max(1.0, on.budget.left() - end)
        spec = replace(spec, train=replace(spec.train, seconds=seconds))

    def on_epoch(m: StepMetrics) -> None:
        on.hooks.final_epoch(m, epochs)

    chosen = fitted(spec, on.splits, on.settings.final_epochs, best.number, on_epoch, views)
    return chosen, spec
