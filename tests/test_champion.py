"""search.champion's decisions taken directly: a final fit under --budget ends within the time
it is given, annealed, and says so; without a budget it trains every planned epoch; ``choose``
takes the final fit, the weights in memory, or retrains, and says which and why."""

from __future__ import annotations

import time
from dataclasses import replace

import optuna
import pytest
import torch
from optuna.trial import create_trial

from models import ViewAverage, build_model
from models.blocks import VIEWS
from search.budget import Budget
from search.champion import EndSettings, choose, fitted, served_views, views_seconds
from search.hooks import Hooks
from search.limits import Limits
from search.objective import BestWeights, Objective, OwnWeights, TrialSettings
from search.space import spec_from_params

MLP = {"arch": "mlp", "hidden_dim": 16, "optimizer": "adam", "lr": 1e-3, "schedule": "cosine"}


def test_a_budgeted_final_fit_follows_the_clock_and_says_how_far_it_got(small_splits):
    seen = []
    spec = spec_from_params(MLP, epochs=200, seed=0)  # far more than half a second holds
    spec = replace(spec, train=replace(spec.train, seconds=0.5))
    chosen = fitted(spec, small_splits, None, 7, seen.append)
    assert 0 < chosen.final_epochs < 200 and seen[-1].epoch == chosen.final_epochs
    assert chosen.note.startswith("(final fit of trial #7: 200 epochs on train + validation")
    assert f"{chosen.final_epochs:.1f} trained: its schedule followed --budget's clock" in (
        chosen.note
    )


def test_without_a_budget_the_final_fit_trains_every_epoch(small_splits):
    spec = spec_from_params(MLP, epochs=2, seed=0)
    chosen = fitted(spec, small_splits, 2, 3, lambda m: None)
    assert chosen.final_epochs == pytest.approx(2.0) and "clock" not in chosen.note


def test_a_final_fit_on_crop_flip_is_served_averaging_views_within_the_latency_limit(
    small_splits,
):
    plain = spec_from_params(MLP, epochs=1, seed=0)
    augmented = spec_from_params({**MLP, "augment": True}, epochs=1, seed=0)
    assert served_views(plain, Limits(), small_splits) == 1  # it never saw the other views
    assert served_views(augmented, Limits(), small_splits) == VIEWS
    assert served_views(augmented, Limits(max_latency_ms=1e6), small_splits) == VIEWS
    assert served_views(augmented, Limits(max_latency_ms=1e-6), small_splits) == 1
    chosen = fitted(augmented, small_splits, 1, 4, lambda m: None, VIEWS)
    assert isinstance(chosen.model, ViewAverage)
    assert chosen.note.endswith(f"; scored and served as the mean over {VIEWS} views)")
    assert not isinstance(fitted(plain, small_splits, 1, 4, lambda m: None).model, ViewAverage)
    assert views_seconds(plain, small_splits, 1) == 0.0  # the end's reserve holds one view
    assert views_seconds(augmented, small_splits, VIEWS) > 0.0


# --- champion.choose: which of the four ways a run's champion comes from --------------------


def settings(final_epochs: int | None) -> EndSettings:
    return EndSettings(epochs=1, final_epochs=final_epochs, reruns=0, seed=0, end_seconds=10.0)


def choose_for(splits, final_epochs: int | None, budget: Budget | None = None, best=None):
    """``choose`` of ``winner()``, tracking off: the hooks hold only this process's own
    weights, ``best`` (BestWeights or None), as an objective keeps them."""
    objective = Objective(splits, TrialSettings(epochs=1, steps=1, seed=0))
    objective.best = best
    study, trial = winner()
    hooks = Hooks([OwnWeights(objective)])
    return choose(study, trial, splits, budget or Budget(None), settings(final_epochs), hooks)


def winner(params: dict = MLP) -> tuple[optuna.Study, optuna.trial.FrozenTrial]:
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(value=0.9, params={}, distributions={}))  # trial 0
    attrs = {"fixed_params": params}  # as a grid records what it fixed: no distributions needed
    study.add_trial(create_trial(value=0.95, params={}, distributions={}, user_attrs=attrs))
    return study, study.trials[1]


def test_choose_fits_the_winner_for_final_epochs(small_splits):
    chosen = choose_for(small_splits, 2)
    assert chosen.final_epochs == pytest.approx(2.0)
    assert chosen.note.startswith("(final fit of trial #1: 2 epochs on train + validation")


def test_choose_without_a_final_fit_takes_the_weights_in_memory(small_splits):
    spec = spec_from_params(MLP, 1, 0)
    torch.manual_seed(0)
    network = build_model(spec.model)
    best = BestWeights(1, 0.95, spec, network.state_dict())
    chosen = choose_for(small_splits, 0, best=best)
    assert chosen.note == "(best trial's own weights)" and chosen.final_epochs == 0
    images = small_splits.val[0][:4]
    assert torch.equal(chosen.model.eval()(images), network.eval()(images))


def test_choose_retrains_a_winner_whose_weights_another_process_held(small_splits):
    spec = spec_from_params(MLP, 1, 0)
    other = BestWeights(0, 0.9, spec, build_model(spec.model).state_dict())  # not the winner
    chosen = choose_for(small_splits, 0, best=other)
    assert chosen.note == "(retrained: trial #1 ran in an earlier process)"


@pytest.mark.parametrize(
    ("final_epochs", "words"),
    [(5, " (no time left for --final-epochs 5)"), (None, " (no time left for a final fit)")],
)
def test_choose_under_a_spent_budget_takes_the_own_weights(small_splits, final_epochs, words):
    spent = Budget(60.0, start=time.monotonic() - 61.0)
    chosen = choose_for(small_splits, final_epochs, budget=spent)
    assert chosen.note == "(retrained: trial #1 ran in an earlier process)" + words
    assert chosen.final_epochs == 0
