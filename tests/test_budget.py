"""search/budget.py and the study's use of it: durations, the deadline, what is kept for the
final fit, and how many final epochs fit."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import create_trial

from search.budget import (
    MARGIN,
    PLATEAU_EPOCHS,
    Budget,
    final_epochs_that_fit,
    parse_duration,
    process_start,
    slowest_rate,
)
from search.study import StudyPlan, budget_allows_trial, final_reserve


@pytest.mark.parametrize(
    "text, seconds", [("600s", 600), ("10m", 600), ("1.5h", 5400), (" 90 ", 90), ("2.5", 2.5)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "0s", "abc", "-5", "10d", ""])
def test_bad_durations_say_what_is_wanted(text):
    with pytest.raises(ValueError, match="must be a (positive )?duration"):
        parse_duration(text)


def test_the_deadline_counts_from_the_start_and_keeps_the_reserve():
    budget = Budget(100.0, start=time.monotonic() - 30)
    assert 69 < budget.left() <= 70
    budget.reserve = 50
    assert budget.allows(19) and not budget.allows(21)
    assert Budget(None).allows(1e12) and Budget(None).left() == float("inf")
    assert process_start() <= time.monotonic()


def test_final_epochs_fill_what_is_left_or_stop_at_what_is_wanted():
    # 10 s per epoch, 100 s left, 10 kept for the end: 90 / (10 * MARGIN) epochs, in tenths.
    assert final_epochs_that_fit(10.0, None, 100.0, 10.0) == 7.8  # 7.83
    assert final_epochs_that_fit(10.0, None, 100.0, 10.0, margin=1.0) == 9.0
    assert final_epochs_that_fit(10.0, 3, 100.0, 10.0) == 3
    assert final_epochs_that_fit(10.0, 5, 15.0, 10.0) == 0  # under one epoch: the trial's own

    # Epochs that cost more from some length on (augmentation) are counted at that cost.
    def dearer(switch: int) -> int:
        return final_epochs_that_fit(1.0, None, 1010.0, 10.0, lambda e: 1.0 if e > switch else 0)

    assert dearer(100) == 434.7  # all at the doubled cost: 1000 / (2 * 1.15)
    assert dearer(500) == 500  # 500 plain epochs fit; none of the dearer ones does


def trials_of(rates: list[float]) -> optuna.Study:
    """Complete trials of 10,000 images at these seconds per image, the first the best."""
    study = optuna.create_study(direction="maximize")
    for i, rate in enumerate(rates):
        attrs = {"train_seconds": rate * 10_000, "train_images": 10_000}
        value = 0.9 - 0.01 * i
        study.add_trial(create_trial(value=value, params={}, distributions={}, user_attrs=attrs))
    return study


def test_the_slowest_complete_trial_prices_the_next_ones():
    assert slowest_rate(trials_of([])) is None
    assert slowest_rate(trials_of([0.001, 0.003, 0.002])) == pytest.approx(0.003)


def test_a_budget_keeps_the_final_share_from_the_start_and_the_reruns_once_priced():
    budget = Budget(1000.0)
    plan = StudyPlan(target=None, budget=budget, trial_images=10_000, final_share=0.5, reruns=2)
    plan.start_images, plan.end_seconds = 1_000, 16.0
    assert final_reserve(plan, trials_of([])) == (1000 - 16) / 2 + 16  # a share of the time
    assert budget_allows_trial(trials_of([]), plan)  # the first trial may always start...
    assert budget.reserve == 16  # ... and finish: without it there is no champion
    study = trials_of([0.01, 0.02, 0.03])  # 100, 200 and 300 s; the top two (by value) re-run
    assert budget_allows_trial(study, plan)
    assert budget.reserve == pytest.approx(508 + (100 + 200) * MARGIN)
    study.set_user_attr("reruns", {"0": [0.5]})  # trial 0 is re-run already
    budget_allows_trial(study, plan)
    assert budget.reserve == pytest.approx(508 + 200 * MARGIN)
    budget.start -= 1000 - (508 + 200 * MARGIN + 1.0)  # 1 s more than the reserve is left:
    assert not budget_allows_trial(study, plan)  # not enough for a first step of 34.5 s


def test_a_fixed_final_fit_is_priced_at_the_slowest_rate():
    plan = StudyPlan(target=5, budget=Budget(1000.0), final_images=60_000)
    plan.end_seconds = 10.0
    assert final_reserve(plan, trials_of([])) == 10.0  # unknown until a trial completes
    assert final_reserve(plan, trials_of([0.0005, 0.001])) == pytest.approx(60 * MARGIN + 10)


@pytest.mark.parametrize(
    ("incumbent_rate", "final"),
    [
        (0.003, (1000 - 16) / 2),  # the plateau's epochs of 1,000 images: less than the share
        (0.0125, 0.0125 * 1000 * PLATEAU_EPOCHS),  # more than the share, and they fit: kept
        (0.1, 1000 - 16),  # they do not fit: the whole working time, no more trials
    ],
)
def test_the_final_fit_keeps_what_the_incumbent_needs_for_its_plateau(incumbent_rate, final):
    """The best trial's rate prices the plateau (the slower second trial does not)."""
    budget = Budget(1000.0)
    plan = StudyPlan(target=None, budget=budget, final_share=0.5, epoch_images=1_000)
    plan.start_images, plan.end_seconds = 100, 16.0
    study = trials_of([incumbent_rate, 0.2])
    assert final_reserve(plan, study) == pytest.approx(final + 16)
    assert budget_allows_trial(study, plan) is (final < 1000 - 16 - 0.2 * 100 * MARGIN)
