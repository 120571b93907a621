"""search.cli's decisions taken directly: the checks of flags that depend on each other or on
the dataset's size, and the defaults that depend on other flags. (That ``main`` turns each
into one line and exit status 2, writing nothing, is ``test_run.py``'s table of bad input.)"""

from __future__ import annotations

import os

import pytest

import search.run
from search.cli import UsageError, parse_args
from search.config import FINAL_EPOCHS, TRIALS, from_json, to_json


def parse(*args: str):
    return parse_args(list(args), search.run.__doc__)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sampler", "anneal"], "--sampler: invalid choice: 'anneal'"),
        (["--sampler", "grid"], "--sampler grid needs --grid FILE"),
        (["--grid", "g.json", "--sampler", "tpe"], "it cannot be combined with --sampler tpe"),
        (["--val-size", "5"], "--val-size must be in 10..59,990, got 5"),
        (["--test-size", "20000"], "--test-size must be in 10..10,000 (the held-out test file)"),
        (["--train-size", "55000", "--val-size", "10000"], "--train-size must be at most 50,000"),
        (["--study", "x" * 600], "--study is 600 characters long; at most 512 are allowed"),
        (["--study", "two\nlines"], "--study must not contain control characters"),
        (["--experiment", ""], "--experiment must not be empty"),
        (["--registered-model", "team/model"], "--registered-model cannot contain '/'"),
        (["--budget", "0"], "--budget: must be a positive duration, got '0'"),
        (["--budget", "1s"], "--budget 1 s cannot hold a run's start and end"),
        (["--final-epochs", "-1"], "--final-epochs: must be an integer >= 0, got '-1'"),
        (["--step-images", "0"], "--step-images: must be a positive integer, got '0'"),
        (["--seed", "-1"], "--seed must be in 0..2147483647, got -1"),
        (["--threads", "100000"], "--threads must be in 1.."),
        (["--final-share", "1.5"], "--final-share: must be a number between 0 and 1, got '1.5'"),
        (["--heartbeat", "0"], "--heartbeat: must be a positive integer, got '0'"),
        (["--parent-run-id", "x"], "unrecognized arguments: --parent-run-id x"),  # children only
        (["--deadline", "5"], "unrecognized arguments: --deadline 5"),
        (["--worker", "2"], "unrecognized arguments: --worker 2"),  # no prefix of --workers
        (["--trial", "5"], "unrecognized arguments: --trial 5"),
    ],
)
def test_bad_flags_raise_one_usage_error_naming_the_flag(args, message):
    with pytest.raises(UsageError) as raised:
        parse(*args)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_the_defaults_that_depend_on_other_flags():
    plain = parse()
    assert (plain.study.trials, plain.study.sampler, plain.study.pruner) == (
        TRIALS,
        "tpe",
        "successive-halving",
    )
    assert (
        plain.training.final_epochs == FINAL_EPOCHS
        and plain.tracking.experiment == "fashion-mnist"
    )
    budgeted = parse("--budget", "10m")
    assert budgeted.study.trials is None  # the budget alone ends the study
    assert budgeted.training.final_epochs is None  # the final fit fills what is left
    grid = parse("--grid", "sweep.json")
    assert (grid.study.sampler, grid.study.pruner, grid.training.final_epochs) == (
        "grid",
        "none",
        0,
    )
    assert grid.study.name == "fashion-mnist-grid-sweep" and grid.training.reruns == 0
    assert parse("--workers", "2").workers.threads == max(1, (os.cpu_count() or 1) // 2)
    assert parse("--study", "s").tracking.experiment == "s"


def test_a_configuration_survives_its_json_round_trip():
    config = parse("--budget", "90s", "--study", "ü s", "--grid", "g.json", "--threads", "1")
    assert from_json(to_json(config)) == config
