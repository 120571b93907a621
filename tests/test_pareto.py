"""search/pareto.py: a two-objective study (val_accuracy up, latency or size down), pruned by
its own rule (a trial that enough cheaper, better trials beat at its step stops), its front in
the summary and in optuna-dashboard's axes, its most accurate point the champion, and
``--champion-trial N`` registering another point of a finished study."""

from __future__ import annotations

import re

import optuna
import pytest
from mlflow import MlflowClient

from search.pareto import (
    DOMINATORS,
    ChampionTrialError,
    check_champion_trial,
    dominators,
    front_lines,
    should_stop,
)
from tests.helpers import QUICK, in_process


def test_a_trial_counts_only_the_trials_that_beat_it_on_both_counts():
    others = [(0.90, 1.0), (0.85, 0.5), (0.80, 2.0), (0.80, 1.0), (0.95, 0.4)]
    # (0.80, 1.0) is beaten by (0.90, 1.0), (0.85, 0.5), (0.95, 0.4); not by itself
    assert dominators(0.80, 1.0, others) == 3
    assert dominators(0.99, 0.1, others) == 0  # the front's own corner
    assert dominators(0.85, 0.5, others) == 1  # only (0.95, 0.4)


def study_with_steps(points: list[tuple[float, float]]) -> optuna.Study:
    """Finished trials of a Pareto study with ``(accuracy at step 1, latency)`` each."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for accuracy, latency in points:
        trial = study.ask()
        trial.set_user_attr("latency_ms", latency)
        trial.set_user_attr("history", [{"step": 1, "val_accuracy": accuracy}])
        study.tell(trial, [accuracy, latency])
    return study


def test_the_pruning_rule_stops_a_trial_only_at_a_rung_and_only_when_beaten_enough():
    study = study_with_steps([(0.90, 1.0), (0.88, 0.8), (0.86, 0.9), (0.70, 3.0)])
    trial = study.ask()
    trial.set_user_attr("latency_ms", 1.2)
    assert should_stop(trial, 1, 0.80, "latency")  # three trials cheaper and better at step 1
    assert not should_stop(trial, 2, 0.80, "latency")  # not a rung
    assert not should_stop(trial, 1, 0.87, "latency")  # only two beat it: it may be on a front
    assert DOMINATORS == 3


def test_the_front_is_printed_cheapest_first():
    study = study_with_steps([(0.90, 1.0), (0.85, 0.5), (0.80, 2.0)])
    assert front_lines(study, "latency") == [
        "Pareto front (val_accuracy up, latency_ms down; 2 points):",
        "  trial #1: val_accuracy 0.8500, 0.5 ms per image",
        "  trial #0: val_accuracy 0.9000, 1 ms per image",
    ]
    with pytest.raises(ChampionTrialError, match="not a complete trial"):
        check_champion_trial(study, 7)


def test_a_pareto_run_prints_its_front_and_registers_a_point_of_it(in_tmp):
    """One small tracked Pareto study: the metric names that optuna-dashboard draws as the
    front's axes, the front in the summary, a point of the front registered (the re-runs
    choose among its most accurate); then, on the finished study, --champion-trial registers
    another point of the front."""
    tracked = [a for a in QUICK if a != "--no-mlflow"] + ["--tracking-uri", "sqlite:///mlflow.db"]
    args = ["--pareto", "params", "--trials", "6", *tracked, "--registered-model", "p"]
    done = in_process(args, in_tmp)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="fashion-mnist", storage="sqlite:///optuna.db")
    assert study.metric_names == ["val_accuracy", "n_parameters"]
    assert "Pareto front (val_accuracy up, n_parameters down;" in done.stdout
    front = {t.number for t in study.best_trials}
    chosen = int(re.search(r"winner: trial #(\d+)", done.stdout).group(1))
    client = MlflowClient("sqlite:///mlflow.db")
    registered = client.get_model_version_by_alias("p", "champion").tags["trial_number"]
    assert chosen in front and registered == str(chosen)  # the re-runs chose among the front
    other = min(study.best_trials, key=lambda t: t.values[1])
    again = in_process([*args, "--champion-trial", str(other.number)], in_tmp)
    assert again.returncode == 0, again.stderr
    assert f"as --champion-trial {other.number} asks" in again.stdout
    champion = client.get_model_version_by_alias("p", "champion")
    assert champion.tags["trial_number"] == str(other.number)
    refused = in_process([*args, "--champion-trial", "99"], in_tmp)
    assert refused.returncode == 2 and "--champion-trial 99: not a complete trial" in (
        refused.stderr
    )
