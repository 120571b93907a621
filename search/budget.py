"""``--budget``: the whole run, final model included, ends within a wall-clock time.

    budget = Budget(parse_duration("10m"))      # counts from now
    budget.reserve = final_fit_seconds + END_SECONDS
    if budget.allows(next_trial_seconds): ...   # else the study ends, "ended by --budget"

Under a budget the final fit is not a fixed number of epochs: ``FINAL_SHARE`` of the budget is
kept for it from the start, the trials and their re-runs use the rest, and the final fit then
trains as many epochs as fit in what is left (more, if the trials ended early).

Costs are estimated from what the study has measured (its trials' ``train_seconds`` and
``train_images``), never guessed: the next trial and the final fit may train at the slowest
per-image rate of any complete trial so far. Before any trial has completed there is nothing
to go by, so the first trial is started whenever time is left, and stopped (PRUNED,
``stopped``: budget) as soon as its own steps show that it cannot finish.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

# Kept for the end of a run: test evaluation, pictures, tables, and with MLflow the plots and
# registering the champion (measured: 3-4 s after the default study's final fit; 8 s with the
# cold start of a tiny run). Doubled for a busy machine.
END_SECONDS = 16.0
END_SECONDS_UNTRACKED = 10.0
MARGIN = 1.15  # estimates from other trials are rough: a busy CPU or a bigger batch
# A final fit's epoch is timed on its own network (train.seconds_per_image), and a whole fit
# ran 1.21-1.3x slower than that timing (docs/measured.md), or as fast as timed. Under --budget
# the fit's schedule follows the clock (search.train): a plan too long costs nothing (it ends
# annealed, on time, with fewer epochs), a plan too short leaves time unused (measured: 48 s
# of a 306 s budget). So the plan errs long: 1.25x the epochs the timing says.
FIT_MARGIN = 0.8
# The final fit's share of a --budget (measured: docs/measured.md, "The budget's split").
FINAL_SHARE = 0.5
# ...or more: what the incumbent needs to reach its plateau, with the regularizers its length
# switches on (search.recipe). Without crop/flip the article's CNN on the fixed recipe gained
# nothing from 15 epochs to 39 (0.9362, 0.9336); with them it reached 0.9389 at 48, the best of
# any run on 2 CPU cores, where a search that kept 15 epochs for its final fit reached 0.9305
# (docs/measured.md, issue 19). A budget that cannot hold them goes to the final fit whole,
# less the first trial (the warm start), because trials cannot win back what a shorter fit
# costs. 48 is the longest length measured, not a plateau seen: longer may still gain.
PLATEAU_EPOCHS = 48
UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """``"600s"``, ``"10m"``, ``"1.5h"`` or a bare number of seconds; must be positive."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match:
        raise ValueError(f"must be a duration such as 600s, 10m or 1h, got {text!r}")
    seconds = float(match.group(1)) * UNITS[match.group(2) or "s"]
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"must be a positive duration, got {text!r}")
    return seconds


def process_start() -> float:
    """When this process started, on the monotonic clock: the budget includes Python's start-up
    and imports (seconds a person timing the command sees). Linux's /proc tells; elsewhere we
    fall back to now."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        age = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return time.monotonic()
    return time.monotonic() - max(0.0, age)


class Budget:
    """A deadline on the monotonic clock; ``None`` seconds means no limit."""

    def __init__(self, seconds: float | None, start: float | None = None) -> None:
        self.seconds = seconds
        self.start = time.monotonic() if start is None else start
        self.reserve = 0.0  # kept for what must still happen after the trials

    def left(self) -> float:
        if self.seconds is None:
            return math.inf
        return self.seconds - (time.monotonic() - self.start)

    def allows(self, seconds: float) -> bool:
        """Whether work of ``seconds`` still leaves the reserve before the deadline."""
        return seconds + self.reserve <= self.left()


def _rates(study: optuna.Study) -> list[tuple[optuna.trial.FrozenTrial, float]]:
    """Each complete trial with its seconds per training image (its validation included)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [
        (t, t.user_attrs["train_seconds"] / t.user_attrs["train_images"])
        for t in done
        if t.user_attrs.get("train_images")
    ]


def slowest_rate(study: optuna.Study) -> float | None:
    """Seconds per training image of the slowest complete trial: what the next trial and the
    final fit may cost per image. ``None`` before any."""
    rates = [rate for _, rate in _rates(study)]
    return max(rates) if rates else None


def best_rate(study: optuna.Study) -> float | None:
    """Seconds per training image of the best complete trial (the incumbent); ``None``
    before any."""
    rated = _rates(study)
    if not rated:
        return None
    return max(rated, key=lambda pair: (pair[0].values[0], -pair[0].number))[1]


def final_epochs_that_fit(
    per_epoch: float,
    wanted: int | None,
    left: float,
    end_seconds: float = END_SECONDS,
    extra: Callable[[float], float] = lambda epochs: 0.0,
    margin: float = MARGIN,
) -> float:
    """How many final-fit epochs end before the deadline, in tenths: at most ``wanted``
    (``None``: as many as fit); 0 if not even one does (then the winner's own weights are the
    champion). ``extra`` gives the seconds a run of that length adds to each epoch
    (augmentation switches on with length); ``margin`` is kept on the estimate."""
    if per_epoch <= 0:
        return wanted or 0
    room = left - end_seconds
    epochs = max(0.0, math.floor(room / (per_epoch * margin) * 10) / 10)
    if wanted is not None:
        epochs = min(wanted, epochs)
    while epochs >= 1 and epochs * (per_epoch + extra(epochs)) * margin > room:
        epochs = round(epochs - 0.1, 1)
    return epochs if epochs >= 1 else 0
