"""The end of a study: who ends it, the winner, the champion, its test accuracy, its pictures,
its registration.

    claim (search.ending) ─► re-runs, winner (search.winner) ─► champion (search.champion)
        ─► test accuracy ─► pictures (Optuna artifacts) ─► results ─► registration

One process ends a study however many worked on it (``search.ending``); the others name it.
Everything besides the work itself (the progress line, MLflow's runs, the registry, a
trial's kept weights) is the study's hooks (``search.hooks``): this module never names
MLflow. ``Outcome.stage`` says where the end is, for an interrupt's summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from torch import nn

from data import Splits
from models import ViewAverage
from search import champion, ending, winner
from search.artifacts import close, pictures, upload
from search.budget import Budget
from search.champion import EndSettings
from search.hooks import Crowned, Results, StudyHooks
from search.limits import Costs, Limits, latency_ms
from search.pareto import most_accurate
from search.storage import Lock
from search.study import StudyPlan, final_reserve
from search.train import evaluate_and_predict


@dataclass
class Outcome:
    """What the end of the run found: the tables, the winner, the champion."""

    files: list[Path] = field(default_factory=list)
    choice: winner.Choice | None = None
    best: optuna.trial.FrozenTrial | None = None  # the winning trial
    test_accuracy: float | None = None
    note: str = ""  # how the champion was obtained
    registered: str = ""  # the registry's line for the summary
    stage: str = "the tables"  # where the end of the run is (an interrupt names it)
    elsewhere: str = ""  # another process holds the end of the study: who
    taken_from: str = ""  # the end was left unfinished by this process (host:pid), now gone
    costs: str = ""  # the champion's latency and size beside the limits, if there are any


@dataclass
class End:
    """What the end of a study works with."""

    study: optuna.Study
    splits: Splits
    budget: Budget
    plan: StudyPlan  # what the trials were to be: the final fit's share of --budget
    settings: EndSettings
    hooks: StudyHooks
    lock: Lock  # the storage's claim lock
    store: Any  # the Optuna artifact store (pictures for optuna-dashboard)


def finish(end: End, outcome: Outcome) -> None:
    """If this process gets the end of the study: the winner, and (if a trial completed) the
    champion, scored, pictured and registered; ``outcome.stage`` says where it is."""
    study = end.study
    claimed = ending.claim(study, end.lock)
    outcome.elsewhere, outcome.taken_from = claimed.elsewhere, claimed.taken_from
    if outcome.elsewhere:  # another process is ending this study: one final fit, not two
        outcome.best = most_accurate(study)
        return
    if outcome.taken_from:
        end.hooks.taken_over(study, outcome.taken_from)
    with ending.leased(study):
        outcome.stage = "the re-runs of the top trials"
        end.budget.reserve = final_reserve(end.plan, study)
        outcome.choice = choose(end)
        if outcome.choice is not None:
            crown(end, outcome)
        else:
            end.hooks.results(study, Results(files=outcome.files))


def choose(end: End) -> winner.Choice | None:
    """The winner, or with ``--champion-trial N`` that trial (another point of the front)."""
    number = end.settings.champion_trial
    if number is None:
        return winner.decide(end.study, end.splits, end.budget, end.settings, end.hooks)
    trial = end.study.get_trials(deepcopy=False)[number]
    return winner.Choice(winner.Candidate(number, (trial.values[0],)), chosen=True)


def costs_line(
    best: optuna.trial.FrozenTrial, limits: Limits, model: nn.Module, splits: Splits
) -> str:
    """The champion's latency and size beside the limits (measured on its trial; the latency
    again on the champion where it averages views, which its trial's network did not)."""
    attrs = best.user_attrs
    if not limits.active or "latency_ms" not in attrs:
        return ""
    latency = attrs["latency_ms"]
    if isinstance(model, ViewAverage):
        latency = latency_ms(model, splits.mean, splits.std)
    return "champion's costs: " + limits.words(Costs(latency, attrs["n_parameters"]))


def crown(end: End, outcome: Outcome) -> None:
    """The winner's champion, scored once on the test set, pictured, and registered."""
    study, splits, hooks = end.study, end.splits, end.hooks
    number = outcome.choice.winner.number
    best = outcome.best = next(t for t in study.trials if t.number == number)
    outcome.stage = "the final fit"
    chosen = champion.choose(study, best, splits, end.budget, end.settings, hooks)
    outcome.stage = "the test evaluation"
    # Scored as it is served: fp32 (the weights are; bf16 autocast is for training's speed).
    _, accuracy, predicted = evaluate_and_predict(chosen.model, *splits.test)
    outcome.test_accuracy, outcome.note = accuracy, chosen.note
    outcome.costs = costs_line(best, end.settings.limits, chosen.model, splits)
    study.set_user_attr("test_accuracy", {"trial": best.number, "value": accuracy})
    outcome.stage = "the pictures"
    figures, matrix = pictures(predicted, splits.test, splits.mean, splits.std, "test")
    upload(end.store, study, figures)  # the champion's, on the study's page in optuna-dashboard
    metrics = {"test_accuracy": accuracy, "best_val_accuracy": best.values[0]}
    metrics["winner_val_mean"] = outcome.choice.winner.mean
    hooks.results(study, Results(metrics, outcome.files, figures, matrix))
    close(figures)
    outcome.stage = "the registration"
    with end.lock:  # several workers may end the study together: one registers
        forced = outcome.choice.chosen  # --champion-trial: registered whatever the current one
        crowned = Crowned(study, best, chosen.model, accuracy, splits, forced)
        outcome.registered = hooks.register(crowned) or ""
