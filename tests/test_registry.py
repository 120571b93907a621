"""search/registry.py: when a study's winner becomes the champion, and what its version says.
A real local MLflow store (SQLite); the model is a tiny standalone network."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from models import ViewAverage, build_model, standalone
from models.blocks import VIEWS
from search.space import spec_from_params
from search.tracking.hooks import network_of
from search.tracking.registry import ALIAS, Entry, Registry, describe

NAME = "tests-classifier"
TINY = {"lr": 1e-3, "arch": "cnn", "n_layers": 1, "channels": 4, "head_dim": 8}


def study_of(name: str, values: list[float]) -> optuna.Study:
    study = optuna.create_study(study_name=name, direction="maximize")
    for value in values:
        study.add_trial(
            create_trial(
                value=value,
                params={"lr": 1e-3},
                distributions={"lr": FloatDistribution(1e-4, 1.0, log=True)},
            )
        )
    return study


@pytest.fixture
def registry(local_mlflow):
    client, experiment = local_mlflow
    model = standalone(build_model(spec_from_params(TINY, 1, 0).model), 0.29, 0.35)
    example = np.zeros((1, 1, 28, 28), dtype=np.float32)

    def register(
        study: optuna.Study, trial_number: int, test_accuracy: float = 0.9, forced=False
    ) -> str:
        run_id = client.create_run(experiment).info.run_id
        best = study.trials[trial_number]
        entry = Entry(study, best, model, test_accuracy, example, (run_id, None))
        return Registry(client, NAME).register(entry, forced)

    return Registry(client, NAME), register


def test_the_first_winner_becomes_the_champion_with_its_record(registry):
    reg, register = registry
    assert reg.champion() is None
    study = study_of("alpha", [0.90, 0.91])
    assert register(study, 1, 0.8765) == f"champion: {NAME} version 1 (alias @{ALIAS})"
    version = reg.champion()
    assert str(version.version) == "1"
    assert version.tags["study"] == "alpha"
    assert version.tags["trial_number"] == "1"
    assert float(version.tags["val_accuracy"]) == pytest.approx(0.91)
    assert float(version.tags["test_accuracy"]) == pytest.approx(0.8765)
    assert json.loads(version.tags["params"]) == {"lr": 1e-3}
    assert version.tags["final_fit_run_id"] == "none (the trial's own weights)"
    assert ":" in version.tags["fitted_by"]  # host:pid
    assert "trial 1; held-out test accuracy 0.8765" in version.description
    loaded = reg.load(version)
    assert isinstance(loaded, torch.nn.Sequential)
    assert loaded(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_a_worse_or_equal_winner_leaves_the_champion_and_a_better_one_moves_it(registry):
    reg, register = registry
    register(study_of("alpha", [0.91]), 0)
    for value in (0.90, 0.91):  # worse, then as good: the champion stays
        line = register(study_of("beta", [value]), 0)
        assert line == f"champion unchanged: {NAME} version 1"
    assert str(reg.champion().version) == "1"
    assert register(study_of("gamma", [0.92]), 0) == f"champion: {NAME} version 2 (alias @{ALIAS})"
    assert (str(reg.champion().version), reg.champion().tags["study"]) == ("2", "gamma")


def test_the_same_trial_is_never_registered_twice_even_if_its_value_rose(registry):
    reg, register = registry
    study = study_of("alpha", [0.90, 0.80])
    register(study, 0)
    assert str(reg.is_champion("alpha", 0).version) == "1"
    assert reg.is_champion("alpha", 1) is None
    assert reg.is_champion("beta", 0) is None  # another study's trial 0
    rerun = study_of("alpha", [0.95])  # a resumed study's record of the same trial
    assert register(rerun, 0) == f"champion unchanged: {NAME} version 1"


def test_the_description_says_how_to_load_and_names_every_class():
    text = describe("clf", "s", 3, 0.91234)
    assert text.startswith("Fashion-MNIST classifier from Optuna study 's', trial 3; ")
    assert "held-out test accuracy 0.9123." in text
    assert "`mlflow.pytorch.load_model('models:/clf@champion')`" in text
    assert "0 T-shirt/top" in text and "9 Ankle boot" in text
    assert "<" not in text  # Markdown in the UI: nothing may read as an HTML tag


def test_a_champion_averaging_views_is_registered_described_and_loaded_back_as_ours(
    local_mlflow,
):
    client, experiment = local_mlflow
    torch.manual_seed(0)
    ours = ViewAverage(build_model(spec_from_params(TINY, 1, 0).model)).eval()
    shipped = standalone(ours, 0.29, 0.35)
    run_id = client.create_run(experiment).info.run_id
    example = np.zeros((1, 1, 28, 28), dtype=np.float32)
    study = study_of("views", [0.9])
    entry = Entry(study, study.trials[0], shipped, 0.9, example, (run_id, None))
    reg = Registry(client, NAME)
    reg.register(entry, False)
    version = reg.champion()
    assert f"It averages {VIEWS} views of each image" in version.description
    back = network_of(reg.load(version))
    assert isinstance(back, ViewAverage)
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(back.eval()(x), ours(x), atol=1e-5)  # normalized inputs, as ours
    assert "views" not in describe("clf", "s", 3, 0.9)


def test_a_trial_named_by_champion_trial_is_registered_even_if_less_accurate(registry):
    """``--champion-trial N`` (a faster point of a Pareto front): registered whatever the
    current champion's accuracy."""
    reg, register = registry
    study = study_of("front", [0.95, 0.90])
    register(study, 0)
    assert register(study, 1) == f"champion unchanged: {NAME} version 1"
    assert register(study, 1, forced=True) == f"champion: {NAME} version 2 (alias @{ALIAS})"
    assert reg.champion().tags["trial_number"] == "1"
