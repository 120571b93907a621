"""search.objective's decisions taken directly: when --budget stops a running trial."""

from __future__ import annotations

import pytest

from search.budget import MARGIN, Budget
from search.objective import cannot_finish
from search.train import StepMetrics


def step(n: int, seconds: float) -> StepMetrics:
    return StepMetrics(n, n / 10, 0.5, 0.8, 0.5, 0.8, seconds)


@pytest.mark.parametrize(
    ("n", "seconds", "left", "stops"),
    [
        (1, 7.5, 40.0, False),  # a warm-up's 7.5 s x 9 would not fit, but the next step does
        (1, 7.5, 5.0, True),  # not even the next step fits
        (2, 7.5, 40.0, True),  # from the second step on, the pace prices every step left
        (2, 1.5, 40.0, False),  # 8 steps of 1.5 s fit
    ],
)
def test_a_trial_is_stopped_when_its_steps_left_would_overrun_the_budget(n, seconds, left, stops):
    assert cannot_finish(Budget(left), step(n, seconds), steps_left=10 - n) is stops


def test_the_reserve_counts_and_a_trial_without_a_budget_always_finishes():
    budget = Budget(100.0)
    budget.reserve = 100.0 - 8 * 1.5 * MARGIN + 1.0  # 1 s short of the 8 steps left
    assert cannot_finish(budget, step(2, 1.5), steps_left=8)
    assert not cannot_finish(Budget(None), step(2, 1e9), steps_left=8)
