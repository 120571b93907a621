"""search/space.py: one vocabulary from sampled params to configs."""

from __future__ import annotations

import optuna
import pytest

from models import CNNConfig, MLPConfig, SeedNetConfig
from search.space import spec_from_params, suggest_params


def test_conditional_params_follow_their_parent():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        params = suggest_params(trial)
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
        assert ("hidden_dim" in params) == (params["arch"] == "mlp")
        assert ("channels" in params) == (params["arch"] == "cnn")
        assert params == trial.params  # same names in Optuna as in our dict
        spec = spec_from_params(params, epochs=2, seed=1)
        assert isinstance(spec.model, MLPConfig if params["arch"] == "mlp" else CNNConfig)
        assert spec.train.lr == params["lr"] and spec.train.batch_size == params["batch_size"]
        study.tell(trial, 0.5)


def test_spec_from_params_uses_config_names():
    spec = spec_from_params(
        {"arch": "mlp", "n_layers": 3, "hidden_dim": 64, "batch_norm": True, "dropout": 0.1,
         "optimizer": "sgd", "lr": 0.02, "momentum": 0.5, "weight_decay": 1e-4,
         "batch_size": 128, "shuffle": False},
        epochs=4, seed=9,
    )  # fmt: skip
    assert spec.model == MLPConfig(n_layers=3, hidden_dim=64, batch_norm=True, dropout=0.1)
    assert (spec.train.momentum, spec.train.shuffle, spec.train.epochs) == (0.5, False, 4)
    assert spec.train.drop_last, "BatchNorm models drop a partial last batch"


def test_seed_network_by_name():
    assert spec_from_params({"network": "batch_norm"}, 1, 0).model == SeedNetConfig("batch_norm")


def test_bad_values_raise_value_error():
    with pytest.raises(ValueError, match="n_layers"):
        spec_from_params({"arch": "cnn", "n_layers": 0}, 1, 0)
