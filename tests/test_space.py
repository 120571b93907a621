"""search/space.py: one vocabulary from sampled params to configs."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution

from models import CNNConfig, MLPConfig, SeedNetConfig
from models.user import Keyword
from search.params import BATCH_SIZES as DEVICE_BATCH_SIZES
from search.params import CHANNELS as DEVICE_CHANNELS
from search.space import (
    ARTICLE,
    DEVICE_WARM_START,
    WARM_START,
    SearchSpace,
    UserModel,
    model_config,
    space_name,
    spec_from_params,
    suggest_params,
)
from search.sweep import Header, Sweep, parameter


def test_conditional_params_follow_their_parent():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        params = suggest_params(trial)
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
        assert params == trial.params  # same names in Optuna as in our dict
        spec = spec_from_params(params, epochs=2, seed=1, steps=7)
        assert isinstance(spec.model, CNNConfig)
        assert spec.model.head_dim == params["head_dim"] and spec.train.steps == 7
        assert spec.train.lr == params["lr"] and spec.train.batch_size == params["batch_size"]
        assert spec.train.schedule == params["schedule"]
        study.tell(trial, 0.5)


@pytest.mark.parametrize("space", ["cpu", "cuda"])
def test_warm_start_is_a_point_of_the_space(recwarn, space):
    """Enqueued, the article's configuration (at the device's batch size) comes back unchanged
    and inside every range (a value outside would make Optuna warn and TPE's log scale fail on
    weight decay 0, and a categorical value outside its choices break TPE)."""
    warm = DEVICE_WARM_START[space]
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.enqueue_trial(warm)
    trial = study.ask()
    assert suggest_params(trial, space) == warm
    assert not [w for w in recwarn if "out of the range" in str(w.message)]
    for name, value in warm.items():
        assert trial.distributions[name]._contains(
            trial.distributions[name].to_internal_repr(value)
        )


def test_spec_from_params_uses_config_names():
    spec = spec_from_params(
        {
            "arch": "mlp",
            "n_layers": 3,
            "hidden_dim": 64,
            "batch_norm": True,
            "dropout": 0.1,
            "optimizer": "sgd",
            "lr": 0.02,
            "momentum": 0.5,
            "weight_decay": 1e-4,
            "batch_size": 128,
            "shuffle": False,
        },
        epochs=4,
        seed=9,
    )
    assert spec.model == MLPConfig(n_layers=3, hidden_dim=64, batch_norm=True, dropout=0.1)
    assert (spec.train.momentum, spec.train.shuffle, spec.train.epochs) == (0.5, False, 4)
    assert spec.train.drop_last, "BatchNorm models drop a partial last batch"


def test_seed_network_by_name():
    assert spec_from_params({"network": "batch_norm"}, 1, 0).model == SeedNetConfig("batch_norm")


def test_bad_values_raise_value_error():
    with pytest.raises(ValueError, match="n_layers"):
        spec_from_params({"arch": "cnn", "n_layers": 0}, 1, 0)


def test_the_baseline_trains_the_article_exactly():
    spec = spec_from_params(ARTICLE, epochs=5, seed=0)
    assert (spec.train.optimizer, spec.train.lr, spec.train.momentum) == ("sgd", 0.01, 0.9)
    assert (spec.train.schedule, spec.train.weight_decay, spec.train.batch_size) == (
        "constant",
        0.0,
        64,
    )
    assert spec.model == model_config(WARM_START)


def test_the_gpu_space_has_gpu_sized_batches_and_widths():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    sampled = [suggest_params(study.ask(), "cuda") for _ in range(30)]
    assert {p["batch_size"] for p in sampled} == set(DEVICE_BATCH_SIZES["cuda"]) == {256, 512}
    assert {p["channels"] for p in sampled} <= set(DEVICE_CHANNELS["cuda"])
    assert DEVICE_BATCH_SIZES["cpu"] == (64, 128, 256) and WARM_START["batch_size"] == 64
    assert space_name("cuda") == "cuda" and space_name("mps") == space_name("cpu") == "cpu"


def test_arch_resnet_builds_the_residual_family_and_drops_partial_batches():
    from models import ResNetConfig

    params = {"arch": "resnet", "n_layers": 3, "channels": 8, "dropout": 0.1, "head_dim": 512}
    spec = spec_from_params(params, epochs=2, seed=0)
    assert spec.model == ResNetConfig(n_layers=3, channels=8, dropout=0.1)  # head_dim: no head
    assert spec.train.drop_last  # BatchNorm always


# --- a space file's ranges, and a user's network ------------------------------------------------


def sweep_of(parameters: dict) -> Sweep:
    return Sweep("sweep.yaml", Header(), {k: parameter(v, k) for k, v in parameters.items()})


FILE = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1e-2},
    "optimizer": {"values": ["adam", "sgd"]},
    "momentum": {"min": 0.5, "max": 0.6},
    "n_layers": {"values": [1, 2]},
    "schedule": {"value": "cosine"},
}


def test_every_trial_lies_inside_the_files_ranges_and_the_tables_conditions_hold():
    space = SearchSpace(sweep=sweep_of(FILE))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    optimizers = set()
    for _ in range(60):
        trial = study.ask()
        params, fixed = space.sample(trial)
        assert 1e-3 <= params["lr"] <= 1e-2 and params["n_layers"] in (1, 2)
        assert ("momentum" in params) == (params["optimizer"] == "sgd")  # the table's condition
        assert 0.5 <= params.get("momentum", 0.5) <= 0.6
        assert fixed == {"schedule": "cosine"} and "schedule" not in trial.params
        assert params["head_dim"] in (128, 256, 512)  # not in the file: its default range
        assert isinstance(trial.distributions["lr"], FloatDistribution)
        assert trial.distributions["lr"].log
        optimizers.add(params["optimizer"])
        study.tell(trial, 0.5)
    assert optimizers == {"adam", "sgd"}


def test_the_warm_start_runs_only_inside_the_files_ranges():
    assert SearchSpace().warm_start() == WARM_START
    inside = sweep_of({"lr": {"min": 1e-3, "max": 1e-2}, "schedule": {"value": "cosine"}})
    warm = SearchSpace(sweep=inside).warm_start()
    assert warm == {k: v for k, v in WARM_START.items() if k != "schedule"}  # fixed: not enqueued
    outside = sweep_of({"optimizer": {"values": ["adam", "sgd"]}})  # the recipe's is adamw
    assert SearchSpace(sweep=outside).warm_start() is None


def user(**keywords) -> UserModel:
    return UserModel("mynet.py:Net", {k: Keyword(k, v) for k, v in keywords.items()}, "0" * 64)


def test_a_user_networks_keywords_are_sampled_where_the_file_gives_ranges_else_fixed():
    space = SearchSpace(sweep=sweep_of({"width": {"values": [4, 8]}}), model=user(width=6, p=0.1))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    widths = set()
    for _ in range(20):
        trial = study.ask()
        params, fixed = space.sample(trial)
        assert fixed == {"model": "mynet.py:Net", "p": 0.1}
        assert "n_layers" not in params and "arch" not in params  # ours do not apply
        widths.add(params["width"])
        study.tell(trial, 0.5)
    assert widths == {4, 8}
    warm = space.warm_start()  # the recipe's training words; width's default is outside
    assert warm is None
    assert SearchSpace(model=user(width=6)).warm_start() == {
        k: WARM_START[k] for k in ("lr", "batch_size", "optimizer", "weight_decay", "schedule")
    }
