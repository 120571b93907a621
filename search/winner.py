"""The winner: which complete trial's configuration the final fit trains, chosen with its noise.

A trial's value is one training run on one seed, validated once; two seeds of one
configuration differ by a few thousandths, as much as the top trials of a study differ from
each other. So before the final fit the top ``k`` complete trials (``--reruns``, default 3) are
each trained once more exactly as the trial was (same length, same data) on another seed, and
the winner is the best mean over its runs; a single complete trial wins unopposed and is not
re-run (its time goes to the final fit). Under ``--budget``, a configuration too slow to train
``MIN_FINAL_EPOCHS`` in what the budget leaves for its final fit is passed over (its measured
rate says so). The summary says what was chosen over what and how
far apart a configuration's runs are: ``trial #25 chosen over #31 and #17 (val 0.9118 +-
0.0012 over 2 runs)``.

Re-runs are kept on the study (user attribute ``reruns``: trial number -> values), so a
resumed study re-runs only configurations it has not re-run yet; the choice is kept as
``winner``. Under ``--budget`` a re-run starts only if it leaves the final fit its share.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import optuna
from optuna.trial import FrozenTrial, TrialState

from data import Splits
from search import champion
from search.budget import MARGIN, Budget
from search.hooks import StudyHooks
from search.space import TrialSpec
from search.train import fit

# Under --budget a configuration whose final fit would get fewer epochs than this in what is
# left cannot win (a slow network judged on one epoch may be unaffordable long).
MIN_FINAL_EPOCHS = 3
RERUN_STRIDE = 1_000_003  # re-run seeds stay clear of every trial's own seed (seed + number)


@dataclass(frozen=True)
class Candidate:
    number: int
    values: tuple[float, ...]  # the trial's own value first, then its re-runs

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def spread(self) -> float | None:
        """Standard deviation over the runs (``None`` on one run: the noise is unknown)."""
        return statistics.stdev(self.values) if len(self.values) > 1 else None


@dataclass(frozen=True)
class Choice:
    winner: Candidate
    others: tuple[Candidate, ...] = ()  # the rest of the top k, best mean first
    skipped: int = 0  # re-runs the budget had no time for
    alone: bool = False  # the only complete trial: nothing to choose, nothing re-run
    chosen: bool = False  # named by --champion-trial: not chosen here

    def line(self) -> str:
        """One line for the summary: what won, over what, and how noisy its figure is."""
        w = self.winner
        if self.chosen:
            return f"trial #{w.number}, as --champion-trial {w.number} asks (val {w.mean:.4f})"
        if self.alone:
            return f"trial #{w.number}, the only complete trial (val {w.mean:.4f}, not re-run)"
        if w.spread is None:
            why = " (no time left to re-run it)" if self.skipped else ""
            noise = f"val {w.mean:.4f} on 1 run: its noise is unknown{why}"
        else:
            noise = f"val {w.mean:.4f} +- {w.spread:.4f} over {len(w.values)} runs"
        if not self.others:
            return f"trial #{w.number} chosen, the only one compared ({noise})"
        over = " and ".join(", ".join(f"#{c.number}" for c in self.others).rsplit(", ", 1))
        return f"trial #{w.number} chosen over {over} ({noise})"

    def record(self) -> dict:
        """What the study keeps as its ``winner`` user attribute."""
        w = self.winner
        return {
            "trial": w.number,
            "mean": w.mean,
            "spread": w.spread,
            "runs": len(w.values),
            "over": [c.number for c in self.others],
        }


def top_trials(
    study: optuna.Study,
    k: int,
    final_epochs: Callable[[FrozenTrial], float] | None = None,
    front: bool = False,
) -> list[FrozenTrial]:
    """The ``k`` most accurate complete trials, best first (ties: the earlier trial); with
    ``front`` (a Pareto study) only the front's. With ``final_epochs`` (under --budget), only
    those whose final fit would get at least ``MIN_FINAL_EPOCHS``, unless none would."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if front:
        done = study.best_trials
    if final_epochs is not None:
        affordable = [t for t in done if final_epochs(t) >= MIN_FINAL_EPOCHS]
        done = affordable or done
    return sorted(done, key=lambda t: (-t.values[0], t.number))[:k]


def rerun_seed(seed: int, trial_number: int, run: int) -> int:
    """Run 1, 2, ... of a trial trains on these seeds (the trial itself used seed + number)."""
    return (seed + trial_number + RERUN_STRIDE * run) % 2**31


def rerun(spec: TrialSpec, splits: Splits, seed: int) -> float:
    """``spec`` trained again on ``seed`` exactly as its trial was; its validation accuracy
    on the whole validation split, after the whole budget (as the trial's value)."""
    spec = replace(spec, train=replace(spec.train, seed=seed, steps=None))
    _, result = fit(spec.model, spec.train, splits.train, val=splits.val)
    return result.last.val_accuracy


@dataclass
class Reruns:
    """How to re-run: the study's trials become specs through ``spec_of``; ``on_start`` and
    ``on_rerun`` (MLflow, the progress bar) hear of each re-run, the latter as
    ``(trial, seed, value, seconds)``."""

    spec_of: Callable[[FrozenTrial], TrialSpec]
    splits: Splits
    seed: int
    budget: Budget
    on_start: Callable[[FrozenTrial], None] | None = None
    on_rerun: Callable[[FrozenTrial, int, float, float], None] | None = None
    final_epochs: Callable[[FrozenTrial], float] | None = None  # under --budget: what fits
    front: bool = False  # a Pareto study: the winner is a point of its front


def choose(study: optuna.Study, k: int, how: Reruns) -> Choice | None:
    """Re-run each of the top ``k`` trials that has not been re-run yet (time allowing), then
    choose the best mean; recorded on the study. ``None`` before any trial is complete."""
    top = top_trials(study, max(1, k), how.final_epochs, how.front)
    if not top:
        return None
    done: dict[str, list[float]] = dict(study.user_attrs.get("reruns", {}))
    skipped = 0
    # The only complete trial wins whatever a re-run says: its time goes to the final fit.
    alone = len(top_trials(study, 2, how.final_epochs, how.front)) == 1
    for trial in top[:k] if not alone else ():
        if done.get(str(trial.number)):
            continue
        seconds = trial.user_attrs.get("train_seconds", 0.0) * MARGIN
        if not how.budget.allows(seconds):
            skipped += 1
            continue
        seed = rerun_seed(how.seed, trial.number, 1)
        if how.on_start is not None:
            how.on_start(trial)
        start = time.perf_counter()
        value = rerun(how.spec_of(trial), how.splits, seed)
        done[str(trial.number)] = [value]
        study.set_user_attr("reruns", done)
        if how.on_rerun is not None:
            how.on_rerun(trial, seed, value, time.perf_counter() - start)
    candidates = [Candidate(t.number, (t.values[0], *done.get(str(t.number), []))) for t in top]
    ranked = sorted(candidates, key=lambda c: (-c.mean, -c.values[0], c.number))
    choice = Choice(ranked[0], tuple(ranked[1:]), skipped, alone)
    study.set_user_attr("winner", choice.record())
    return choice


def decide(
    study: optuna.Study,
    splits: Splits,
    budget: Budget,
    settings: champion.EndSettings,
    hooks: StudyHooks,
) -> Choice | None:
    """The study's winner: the top ``settings.reruns`` trials re-run (what the budget allows
    beyond its reserve, which keeps the final fit's time), the best mean chosen; each re-run
    told to the hooks (the progress line, MLflow). ``None`` before any trial completed."""

    def final_epochs(trial: FrozenTrial) -> float:  # what its final fit would get of the rest
        left = Budget(budget.left())
        return champion.epochs_that_fit(trial, splits, None, left, settings, measured=False)

    def on_rerun(trial: FrozenTrial, seed: int, value: float, seconds: float) -> None:
        hooks.rerun_done(trial, seed, value)

    budgeted = settings.final_epochs is None and budget.seconds is not None
    how = Reruns(
        spec_of=lambda t: champion.trial_spec(
            t, settings.epochs, settings.seed, settings.precision
        ),
        splits=splits,
        seed=settings.seed,
        budget=budget,
        on_start=hooks.rerun_started,
        on_rerun=on_rerun,
        final_epochs=final_epochs if budgeted else None,
        front=settings.pareto is not None,
    )
    return choose(study, settings.reruns, how)
