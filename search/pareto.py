"""``--pareto latency|params``: the whole trade-off, accuracy against cost, as a Pareto front.

The study has two objectives, ``val_accuracy`` up and the cost down (``latency_ms`` or
``n_parameters``, measured before a trial trains: ``search.limits``); optuna-dashboard draws
its front with both axes named (the study's metric names). Optuna prunes no multi-objective
study (its ``report`` and ``should_prune`` refuse one; optuna#3450), but here the cost is known
before training, so a trial can be judged against the trials near its own cost: at each rung
(steps 1 and 4, the default pruner's), a trial stops when at least ``DOMINATORS`` trials that
reached the same step were there both at least as accurate and at most as costly (one of the
two strictly). A trial on or near the front at its step goes on; one that cheaper, better
configurations already beat stops after seconds. Its steps are kept in its ``history`` user
attribute, as every trial's are.

The champion is the front's most accurate point (within any limit; ``--champion-trial N``
fits and registers another point of a finished study instead).
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.errors import UserError

COSTS = {"latency": "latency_ms", "params": "n_parameters"}  # --pareto's words -> user attrs
METRIC = "val_accuracy"
RUNGS = (1, 4)  # the steps at which a trial is judged (successive halving's, search.samplers)
DOMINATORS = 3  # trials that beat a trial at its step on both counts before it stops


def accuracy(trial: FrozenTrial) -> float:
    """A trial's validation accuracy: its value, or its first value in a Pareto study."""
    return trial.values[0]


def most_accurate(study: optuna.Study) -> FrozenTrial | None:
    """The most accurate complete trial (the earliest on a tie), or ``None``."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return min(done, key=lambda t: (-accuracy(t), t.number)) if done else None


def directions(pareto: str | None) -> list[str]:
    return ["maximize", "minimize"] if pareto else ["maximize"]


def metric_names(pareto: str | None) -> list[str]:
    return [METRIC, COSTS[pareto]] if pareto else [METRIC]


def cost_of(trial: FrozenTrial | optuna.Trial, pareto: str) -> float:
    return float(trial.user_attrs[COSTS[pareto]])


def dominators(value: float, cost: float, others: Sequence[tuple[float, float]]) -> int:
    """How many of ``others`` ((accuracy at the same step, cost)) beat (``value``, ``cost``) on
    both counts, one strictly."""
    return sum(a >= value and c <= cost and (a > value or c < cost) for a, c in others)


def should_stop(trial: optuna.Trial, step: int, value: float, pareto: str) -> bool:
    """At a rung: whether ``DOMINATORS`` trials that reached ``step`` beat this one there."""
    if step not in RUNGS:
        return False
    cost, seen = cost_of(trial, pareto), []
    for other in trial.study.get_trials(deepcopy=False):
        if other.number == trial.number or COSTS[pareto] not in other.user_attrs:
            continue
        at = [h["val_accuracy"] for h in other.user_attrs.get("history", []) if h["step"] == step]
        if at:
            seen.append((at[0], cost_of(other, pareto)))
    return dominators(value, cost, seen) >= DOMINATORS


def front(study: optuna.Study) -> list[FrozenTrial]:
    """The Pareto front (complete trials nothing beats on both counts), cheapest first."""
    return sorted(study.best_trials, key=lambda t: (t.values[1], -t.values[0]))


def front_lines(study: optuna.Study, pareto: str) -> list[str]:
    """The front for the summary: one line per point."""
    unit = " ms per image" if pareto == "latency" else " parameters"
    lines = [f"Pareto front ({METRIC} up, {COSTS[pareto]} down; {len(study.best_trials)} points):"]
    for t in front(study):
        cost = f"{t.values[1]:.3g}" if pareto == "latency" else f"{int(t.values[1]):,}"
        lines.append(f"  trial #{t.number}: {METRIC} {t.values[0]:.4f}, {cost}{unit}")
    return lines


class ChampionTrialError(UserError):
    """``--champion-trial N`` that the study cannot fit: one line, exit 2."""


def check_champion_trial(study: optuna.Study, number: int) -> None:
    """``number`` must be a complete trial of the study."""
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials) or trials[number].state != TrialState.COMPLETE:
        complete = [t.number for t in trials if t.state == TrialState.COMPLETE]
        raise ChampionTrialError(
            f"--champion-trial {number}: not a complete trial of --study {study.study_name!r} "
            f"(complete: {', '.join(f'#{n}' for n in complete[:20]) or 'none'})"
        )
