"""search/limits.py: a configuration over --max-latency or --max-params is measured, recorded
and not trained (it ends PRUNED at once, does not count as a trial, sets Optuna's constraints),
so it is never chosen, re-run or registered; a limit the space cannot meet is one line before
anything is written; the champion's costs are stated beside the limits, in the summary and on
its registered version; a resume with other limits is refused."""

from __future__ import annotations

import json

import optuna
import pytest
from mlflow import MlflowClient

from search import winner
from search.limits import Costs, LimitError, Limits, check_limits, latency_ms
from search.objective import Objective, TrialSettings
from search.space import SearchSpace
from search.study import FINISHED, StudyPlan, finished_count
from tests.helpers import GOOD, QUICK, in_process

SMALL = {**GOOD, "channels": 16, "head_dim": 128}  # about 400,000 parameters
LARGE = {**GOOD, "channels": 32, "head_dim": 512}  # about 3,2 million


def test_over_and_constraints_say_which_limit_and_by_how_much():
    limits = Limits(max_latency_ms=1.0, max_params=1000)
    assert not Limits().active and limits.active
    assert limits.over(Costs(0.5, 900)) is None
    assert limits.over(Costs(1.5, 900)) == "latency 1.5 ms over --max-latency 1"
    assert limits.over(Costs(0.5, 2000)) == "2,000 parameters over --max-params 1,000"
    assert limits.constraints(Costs(1.5, 900)) == {"latency_ms": 0.5, "n_parameters": -100.0}
    assert limits.words(Costs(0.5, 900)) == (
        "0.5 ms per image (--max-latency 1), 900 parameters (--max-params 1,000)"
    )


def test_latency_is_a_positive_median_and_leaves_the_threads_as_they_were():
    import torch

    threads = torch.get_num_threads()
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    assert latency_ms(network, 0.3, 0.3) > 0 and torch.get_num_threads() == threads


def test_a_configuration_over_a_limit_is_not_trained_not_counted_and_never_wins(small_splits):
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(LARGE)
    study.enqueue_trial(SMALL)
    settings = TrialSettings(epochs=1, steps=2, seed=0, limits=Limits(max_params=1_000_000))
    study.optimize(Objective(small_splits, settings), n_trials=2)
    large, small = study.trials
    assert large.state.name == "PRUNED" and large.user_attrs["over_limit"].endswith(
        "parameters over --max-params 1,000,000"
    )
    assert "train_seconds" not in large.user_attrs and not large.intermediate_values
    assert large.constraints["n_parameters"] > 0 and small.constraints["n_parameters"] <= 0
    assert small.state.name == "COMPLETE" and "latency_ms" in small.user_attrs
    assert finished_count(study, StudyPlan(target=2)) == 1  # the large one cost no trial
    assert [t.number for t in winner.top_trials(study, 3)] == [small.number]
    assert all(t.state in FINISHED for t in study.trials)


def test_a_limit_the_space_cannot_meet_names_the_least_it_reaches():
    with pytest.raises(LimitError, match="the smallest has 98,442 parameters"):
        check_limits(Limits(max_params=5000), SearchSpace("cpu"))
    with pytest.raises(LimitError, match=r"the fastest takes [\d.]+ ms per image"):
        check_limits(Limits(max_latency_ms=0.001), SearchSpace("cpu"))
    check_limits(Limits(max_params=100_000), SearchSpace("cpu"))  # reachable: passes


def test_a_limited_run_states_the_champions_costs_and_mlflow_keeps_them(in_tmp):
    """One small tracked run under --max-params: the summary's costs line, the trial runs'
    latency_ms and n_parameters metrics, the registered version's tags beside the limit; a
    resume with another limit is refused in one line; an impossible one too, nothing
    written."""
    tracked = [a for a in QUICK if a != "--no-mlflow"] + ["--tracking-uri", "sqlite:///mlflow.db"]
    args = ["--trials", "2", "--max-params", "600000", *tracked, "--registered-model", "lim"]
    optuna.create_study(
        study_name="fashion-mnist", storage="sqlite:///optuna.db", direction="maximize"
    ).enqueue_trial(LARGE)
    done = in_process(args, in_tmp)
    assert done.returncode == 0, done.stderr
    assert "champion's costs: " in done.stdout and "(--max-params 600,000)" in done.stdout
    client = MlflowClient("sqlite:///mlflow.db")
    version = client.get_model_version_by_alias("lim", "champion")
    assert int(version.tags["n_parameters"]) <= 600_000 and version.tags["max_params"] == "600000"
    study = optuna.load_study(study_name="fashion-mnist", storage="sqlite:///optuna.db")
    over = [t for t in study.trials if "over_limit" in t.user_attrs]
    assert over and json.loads(version.tags["params"]) != over[0].params
    run = client.get_run(over[0].user_attrs["mlflow_run_id"])
    assert run.data.metrics["n_parameters"] == over[0].user_attrs["n_parameters"]
    other = in_process([*args[:2], "--max-params", "900000", *args[4:]], in_tmp)
    assert other.returncode == 2 and "--study 'fashion-mnist' was created with" in other.stderr
    before = sorted(p.name for p in in_tmp.iterdir())
    impossible = in_process(["--max-params", "10", *QUICK, "--study", "new"], in_tmp)
    assert impossible.returncode == 2 and "the smallest has" in impossible.stderr
    assert sorted(p.name for p in in_tmp.iterdir()) == before


def test_a_grid_point_over_a_limit_is_recorded_not_trained_and_done(in_tmp):
    (in_tmp / "g.json").write_text(json.dumps({"arch": ["cnn"], "head_dim": [16, 2048]}))
    done = in_process(["--grid", "g.json", "--max-params", "500000", *QUICK], in_tmp)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="fashion-mnist-grid-g", storage="sqlite:///optuna.db")
    states = {
        t.params["head_dim"]: (t.state.name, "over_limit" in t.user_attrs) for t in study.trials
    }
    assert states == {16: ("COMPLETE", False), 2048: ("PRUNED", True)}
    assert "grid done" in done.stdout
