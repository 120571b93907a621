"""search/report.py: what a person reads at the end, from an in-memory study."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from search.config import RunConfig, StudyConfig
from search.finish import Outcome
from search.report import ended_by, state_counts, summary_of, verdict
from search.study import Ended, Stop
from search.winner import Candidate, Choice

CONFIG = RunConfig(study=StudyConfig(trials=50, budget=600.0, timeout=30.0))


@pytest.mark.parametrize(
    "stop, words",
    [
        (Stop(Ended.DONE), "ended by --trials 50"),
        (Stop(Ended.BUDGET), "ended by --budget 600 s: no time for another trial"),
        (Stop(Ended.TIMEOUT), "ended by --timeout 30 s"),
        (Stop(Ended.INTERRUPTED), "interrupted"),
        (Stop(Ended.WORKER_FAILED, "exit 3"), "worker failed (exit 3)"),
        (
            Stop(Ended.CANNOT_RUN, "no CUDA"),
            "stopped: 20 trials in a row could not run (no CUDA)",
        ),
    ],
)
def test_what_ended_the_study_is_said_in_the_words_of_its_flag(stop, words):
    assert ended_by(stop, CONFIG) == words


def test_a_grid_says_it_is_done_and_each_stop_has_its_exit_status():
    grid = replace(CONFIG, study=replace(CONFIG.study, grid="sweep.json"))
    assert ended_by(Stop(Ended.DONE), grid) == "grid done"
    statuses = {why: Stop(why).exit_status for why in Ended}
    assert statuses == {
        Ended.DONE: 0,
        Ended.BUDGET: 0,
        Ended.TIMEOUT: 0,
        Ended.INTERRUPTED: 130,
        Ended.CANNOT_RUN: 1,
        Ended.WORKER_FAILED: 1,
        Ended.DISK_FULL: 1,
    }


def study_of(values: list[float | None]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    dist = {"lr": FloatDistribution(1e-4, 1.0, log=True)}
    for i, value in enumerate(values):
        state = TrialState.COMPLETE if value is not None else TrialState.PRUNED
        study.add_trial(
            create_trial(
                value=value,
                state=state,
                params={"lr": 0.01 * (i + 1)},
                distributions=dist,
                intermediate_values={1: 0.5} if value is None else None,
            )
        )
    return study


def test_the_summary_names_the_best_trial_the_winner_and_the_champion():
    study = study_of([0.90, 0.92, None, 0.91])
    winner = study.trials[3]
    choice = Choice(Candidate(3, (0.91, 0.915)), (Candidate(1, (0.92, 0.90)),))
    outcome = Outcome(
        [Path("t.csv")], choice, winner, 0.9321, "(final fit of trial #3: 8 epochs, 60 s)"
    )
    fp32 = replace(CONFIG, training=replace(CONFIG.training, precision="fp32"))
    lines = summary_of(fp32, study, Stop(Ended.BUDGET), 123.4, outcome, "MLflow: off").lines()
    assert lines[0] == (
        "study 'fashion-mnist': 3 complete, 1 pruned, 0 failed "
        "(ended by --budget 600 s: no time for another trial; 123 s this run, fp32)"
    )
    assert lines[1] == "best trial #1: val_accuracy 0.9200"
    assert lines[2] == "winner: trial #3 chosen over #1 (val 0.9125 +- 0.0035 over 2 runs)"
    assert lines[3] == "winner's params: lr=0.04"
    assert lines[4] == (
        "test_accuracy (held-out 10,000 images): 0.9321 (final fit of trial #3: 8 epochs, 60 s)"
    )
    assert lines[-2:] == ["MLflow: off", "saved: t.csv"]


def test_a_study_without_a_complete_trial_says_so():
    study = study_of([None])
    lines = summary_of(CONFIG, study, Stop(Ended.DONE), 1.0, Outcome(), "").lines()
    assert lines[1] == "no trial has completed yet: nothing to evaluate"
    assert state_counts(study) == {"PRUNED": 1}


def test_a_run_that_left_the_end_to_another_names_it_and_an_interrupt_names_its_stage():
    study = study_of([0.9, 0.8])
    left = Outcome(best=study.best_trial, elsewhere="the champion is being fitted by b:7")
    lines = summary_of(CONFIG, study, Stop(Ended.DONE), 1.0, left, "").lines()
    assert "the champion is being fitted by b:7" in lines
    assert not any("test_accuracy" in line for line in lines)
    stop = Stop(Ended.INTERRUPTED, "during the final fit")
    first = summary_of(CONFIG, study, stop, 1.0, Outcome(), "").lines()[0]
    assert "interrupted during the final fit: the same command finishes the job" in first


def test_an_end_taken_over_from_a_gone_holder_says_from_whom():
    study = study_of([0.9])
    taken = Outcome(best=study.best_trial, test_accuracy=0.91, taken_from="vm:27598")
    lines = summary_of(CONFIG, study, Stop(Ended.DONE), 1.0, taken, "").lines()
    assert (
        "the end of this study was left unfinished by vm:27598, which is gone: finished here"
        in (lines)
    )


def test_a_study_ended_without_a_champion_says_why_its_exit_status_is_1():
    assert verdict(1, Stop(Ended.DONE)) == (
        "no champion: no trial of the study has completed (exit status 1)"
    )
    assert verdict(0, Stop(Ended.DONE)) == "" and verdict(1, Stop(Ended.CANNOT_RUN, "x")) == ""


def test_a_full_disk_stops_the_study_with_exit_status_1_and_says_where():
    stop = Stop(Ended.DISK_FULL, "during the final fit")
    assert stop.exit_status == 1
    first = summary_of(CONFIG, study_of([0.9]), stop, 1.0, Outcome(), "").lines()[0]
    assert "stopped during the final fit: the disk is full (see the error above)" in first


@pytest.mark.parametrize("precision, words", [("bf16", "bf16 autocast"), ("fp32", "fp32")])
def test_the_summarys_first_line_names_the_precision_the_run_trained_in(precision, words):
    config = replace(CONFIG, training=replace(CONFIG.training, precision=precision))
    line = summary_of(config, study_of([0.9]), Stop(Ended.DONE), 5.0, Outcome(), "").lines()[0]
    assert line.endswith(f"5 s this run, {words})")
