"""search/sweep.py: the sweep syntax users already write, each form mapped to its Optuna
distribution, the top level taken (and said), and every bad file refused in one line naming
the file and the parameter."""

from __future__ import annotations

import json
import math

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from search import network
from search.grid import load_grid
from search.sweep import SweepError, header, sweep

OURS = network.allowed(None)


def written(tmp_path, content, name: str = "sweep.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(content) if name.endswith(".json") else content)
    return str(path)


def params_of(tmp_path, parameters: dict) -> dict:
    return sweep(written(tmp_path, {"parameters": parameters}), OURS).params


@pytest.mark.parametrize(
    ("name", "spec", "expected"),
    [
        ("batch_size", {"values": [32, 64]}, CategoricalDistribution([32, 64])),
        ("n_layers", {"min": 1, "max": 3}, IntDistribution(1, 3)),
        ("dropout", {"min": 0.0, "max": 0.5}, FloatDistribution(0.0, 0.5)),
        ("n_layers", {"distribution": "int_uniform", "min": 1, "max": 3}, IntDistribution(1, 3)),
        ("dropout", {"distribution": "uniform", "min": 0, "max": 1}, FloatDistribution(0, 1)),
        (
            "lr",
            {"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1},
            FloatDistribution(1e-4, 0.1, log=True),
        ),
        (
            "lr",
            {"distribution": "log_uniform", "min": -9.0, "max": -2.0},  # exponents of e
            FloatDistribution(math.exp(-9), math.exp(-2), log=True),
        ),
        (
            "dropout",
            {"distribution": "q_uniform", "min": 0, "max": 0.9, "q": 0.25},  # top on the grid
            FloatDistribution(0.0, 0.75, step=0.25),
        ),
        (
            "n_layers",
            {"distribution": "categorical", "values": [1, 2]},
            CategoricalDistribution([1, 2]),
        ),
    ],
)
def test_each_form_maps_to_its_optuna_distribution(tmp_path, name, spec, expected):
    got = params_of(tmp_path, {name: spec})[name]
    assert got.distribution == expected and not got.fixed


def test_value_and_constant_fix_a_parameter_and_nested_parameters_only_group(tmp_path):
    got = params_of(
        tmp_path,
        {
            "schedule": {"value": "cosine"},
            "optimizer": {"distribution": "constant", "value": "adam"},
            "net": {"parameters": {"n_layers": {"values": [1, 2]}}},
        },
    )
    assert got["schedule"].fixed and got["schedule"].value == "cosine"
    assert got["optimizer"].fixed and got["optimizer"].value == "adam"
    assert got["n_layers"].distribution == CategoricalDistribution([1, 2])
    assert got["n_layers"].contains(2) and not got["n_layers"].contains(3)


def test_a_q_range_of_integers_is_an_int_distribution_with_a_step(tmp_path):
    got = params_of(
        tmp_path, {"head_dim": {"distribution": "q_uniform", "min": 64, "max": 500, "q": 64}}
    )
    assert got["head_dim"].distribution == IntDistribution(64, 448, step=64)


def test_the_top_level_is_taken_and_said(tmp_path):
    path = written(
        tmp_path,
        {
            "method": "bayes",
            "metric": {"name": "val_accuracy", "goal": "maximize"},
            "run_cap": 30,
            "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 3, "s": 2},
            "program": "train.py",
            "parameters": {"lr": {"value": 0.01}},
        },
    )
    head = header(path)
    assert (head.method, head.run_cap, head.pruner) == ("tpe", 30, "hyperband")
    assert head.pruner_options == {"min_resource": 2, "reduction_factor": 3}
    said = "; ".join(head.notes)
    assert "method bayes -> --sampler tpe" in said and "run_cap 30 -> --trials 30" in said
    assert "s not used" in said and "program ignored" in said
    assert header(written(tmp_path, {"method": "random", "parameters": {}})).method == "random"


def test_a_plain_map_of_lists_and_method_grid_are_grids(tmp_path):
    plain = written(tmp_path, {"lr": [0.01], "batch_size": [1000, 2000]})
    assert header(plain).grid
    assert load_grid(plain, "--space") == {"lr": [0.01], "batch_size": [1000, 2000]}
    swept = written(
        tmp_path,
        "method: grid\nparameters:\n  lr: {value: 0.01}\n  batch_size: {values: [1000, 2000]}\n",
        "grid.yaml",
    )
    assert header(swept).grid and header(swept).method == "grid"
    assert load_grid(swept, "--space") == {"lr": [0.01], "batch_size": [1000, 2000]}


REFUSED = [
    (
        {"parameters": {"learning_rate": {"min": 0.001, "max": 0.1}}},
        "unknown parameter 'learning_rate' (did you mean lr?); this model takes: lr, batch_size",
    ),
    ({"parameters": {"epochs": {"value": 3}}}, "(a trial's length is --epochs, a flag"),
    ({"parameters": {"lr": {"min": 0.1, "max": 0.1}}}, "lr: min 0.1 must be below max 0.1"),
    (
        {"parameters": {"lr": {"distribution": "log_uniform_values", "min": 0, "max": 1}}},
        "lr: a log range must lie above 0, got min 0",
    ),
    ({"parameters": {"optimizer": {"values": []}}}, "optimizer: values must be a non-empty list"),
    (
        {"parameters": {"lr": {"distribution": "gaussian", "min": 0, "max": 1}}},
        "lr: unknown distribution 'gaussian'",
    ),
    (
        {"parameters": {"lr": {"distribution": "normal", "mu": 0, "sigma": 1}}},
        "lr: distribution normal has no Optuna counterpart",
    ),
    (
        {"parameters": {"batch_size": {"values": [32, 64.5]}}},
        "batch_size: must be an integer, got 64.5",
    ),
    ({"parameters": {"optimizer": {"values": ["adam", "lion"]}}}, "optimizer: must be one of"),
    ({"parameters": {"lr": 0.01}}, "lr: must be a mapping such as {values: [...]}"),
    (
        {"metric": {"name": "val_loss", "goal": "minimize"}, "parameters": {}},
        "metric must be val_accuracy",
    ),
    (
        {"metric": {"name": "val_accuracy"}, "parameters": {}},
        "its goal must be maximize, got 'minimize'",
    ),
    ({"method": "hyperopt", "parameters": {}}, "method must be one of grid, random, bayes"),
    (
        {"early_terminate": {"type": "envelope"}, "parameters": {}},
        "early_terminate type must be hyperband",
    ),
    ({"run_cap": 0, "parameters": {}}, "run_cap must be a positive integer, got 0"),
    ({"parameter": {}}, "unknown key 'parameter'"),
    ({"parameters": {}}, "parameters must map names to ranges"),
]


@pytest.mark.parametrize(("content", "message"), REFUSED)
def test_a_bad_file_is_one_line_naming_the_file_and_the_parameter(tmp_path, content, message):
    path = written(tmp_path, content)
    with pytest.raises(SweepError) as refused:
        sweep(path, OURS)
    line = str(refused.value)
    assert line.startswith(f"--space {path}: ") and message in line and "\n" not in line


def test_a_user_networks_names_replace_ours(tmp_path):
    path = written(tmp_path, {"parameters": {"n_layers": {"values": [1, 2]}}})
    with pytest.raises(
        SweepError, match="n_layers is a parameter of our networks, not of x.py:Net"
    ):
        sweep(path, {"lr": lambda v: None, "width": lambda v: None}, "--model x.py:Net")
