"""search.champion's decisions taken directly: when the final fit must stop to keep --budget,
and that its price is timed on batches an epoch would read."""

from __future__ import annotations

import math

import pytest

from search.budget import Budget
from search.champion import overruns
from search.train import StepMetrics


def epoch(n: float, seconds: float) -> StepMetrics:
    return StepMetrics(n, n, 0.5, 0.8, 0.5, 0.8, seconds)


@pytest.mark.parametrize(
    ("left", "after", "epochs", "stops"),
    [
        (100.0, 3.0, 10.0, False),  # another 10 s epoch fits with room for the 16 s end
        (25.0, 3.0, 10.0, True),  # 25 - 16 leaves 9 s: a 10 s epoch would overrun
        (25.0, 9.5, 10.0, False),  # only half an epoch is left: 5 s fits
        (5.0, 10.0, 10.0, False),  # the fit is done: nothing to stop
    ],
)
def test_the_final_fit_stops_before_an_epoch_that_would_overrun_the_budget(
    left, after, epochs, stops
):
    assert overruns(epoch(after, 10.0), epochs, Budget(left), end=16.0) is stops


def test_without_a_budget_the_final_fit_never_stops_early():
    assert not overruns(epoch(1.0, 1e9), 100.0, Budget(None), end=16.0)
    assert Budget(None).left() == math.inf
