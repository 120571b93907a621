"""search/params.py: the one table of parameters drives sampling, grid keys, configs and docs."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import optuna

from models import CNNConfig, MLPConfig, ResNetConfig, SeedNetConfig
from search.grid import GRID_KEYS, MODEL_KEYS
from search.params import PARAMS, markdown_table, names, sample
from search.train import TrainConfig

DOCS = Path(__file__).resolve().parents[1] / "docs" / "search.md"


def test_the_docs_show_the_table_itself():
    assert markdown_table() in DOCS.read_text()


def test_every_word_of_a_config_is_a_param_and_feeds_that_config():
    model_words = {
        f.name for c in (CNNConfig, MLPConfig, ResNetConfig, SeedNetConfig) for f in fields(c)
    }
    # arch: the family itself; model: a user's own network (models.user), its words its own
    assert model_words | {"arch", "model"} == set(names("model"))
    train_words = set(names("train"))
    assert train_words <= {f.name for f in fields(TrainConfig)}
    assert {"epochs", "seed", "steps", "drop_last"}.isdisjoint(
        train_words
    )  # the run's, not a param's
    assert list(GRID_KEYS) == [p.name for p in PARAMS] and "network" not in MODEL_KEYS


def test_sampling_follows_the_table_and_its_conditions():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen_sgd = seen_other = False
    for _ in range(30):
        trial = study.ask()
        params = sample(trial, "cpu")
        sampled = [p.name for p in PARAMS if p.sample is not None]
        assert list(params) == [n for n in sampled if n in params]  # the table's order
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
        seen_sgd |= params["optimizer"] == "sgd"
        seen_other |= params["optimizer"] != "sgd"
        for p in PARAMS:
            if p.name in params:
                assert p.grid[0](params[p.name]), (
                    p.name,
                    params[p.name],
                )  # a valid grid value too
        study.tell(trial, 0.5)
    assert seen_sgd and seen_other
    gpu = sample(optuna.create_study().ask(), "cuda")
    assert gpu["batch_size"] in (256, 512) and gpu["channels"] in (32, 48, 64)
