"""search.champion's decisions taken directly: a final fit under --budget ends within the time
it is given, annealed, and says so; without a budget it trains every planned epoch."""

from __future__ import annotations

from dataclasses import replace

import pytest

from search.champion import fitted
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
