"""search/runs.py: the MLflow runs of one invocation (parent, a child per trial, re-runs, the final
fit) and the trials MLflow missed, logged later from the study's own record. A real local
MLflow store (SQLite); the studies are in memory."""

from __future__ import annotations

from dataclasses import asdict

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from search.tracking.runs import STEP_METRICS, RunLogger
from search.train import StepMetrics

LR = {"lr": FloatDistribution(1e-4, 1.0, log=True)}


def step(n: int, val: float = 0.5) -> StepMetrics:
    return StepMetrics(n, n / 2, 1.0 / n, 0.4, 0.9, val, 1.5)


@pytest.fixture
def logger(local_mlflow):
    client, experiment = local_mlflow
    runs = RunLogger(client, experiment, None)
    runs.start_parent("s", {"sampler": "tpe"}, {"epochs": 1})
    return client, runs


def history(values: list[float]) -> list[dict]:
    return [asdict(step(i + 1, v)) for i, v in enumerate(values)]


def finished(state: TrialState, values: list[float], **attrs) -> optuna.trial.FrozenTrial:
    value = max(values) if state == TrialState.COMPLETE else None
    return create_trial(
        state=state,
        value=value,
        params={"lr": 1e-3},
        distributions=LR,
        user_attrs={"history": history(values), **attrs},
        intermediate_values={i + 1: v for i, v in enumerate(values)},
    )


def test_the_parent_run_carries_the_study_its_tags_and_settings(logger):
    client, runs = logger
    parent = client.get_run(runs.parent_id)
    assert parent.info.run_name.startswith("s-")
    assert parent.data.tags["study"] == "s" and parent.data.tags["sampler"] == "tpe"
    assert parent.data.tags["git_commit"]  # a hash, or "unknown" outside a checkout
    assert parent.data.params == {"epochs": "1"}
    runs.end_parent("FINISHED")
    assert client.get_run(runs.parent_id).info.status == "FINISHED"


@pytest.mark.parametrize(
    ("state", "killed", "status"),
    [
        ("COMPLETE", False, "FINISHED"),
        ("PRUNED", False, "FINISHED"),  # a pruned trial did what it was asked: its tag says so
        ("FAIL", False, "FAILED"),
        ("FAIL", True, "KILLED"),  # Ctrl-C
    ],
)
def test_a_trial_is_a_child_run_with_its_steps_state_and_status(logger, state, killed, status):
    client, runs = logger
    trial = optuna.create_study(study_name="s").ask()
    run_id = runs.start_trial(trial, {"lr": 1e-3})
    runs.log_step(trial, step(1, 0.6))
    runs.log_step(trial, step(2, 0.7))
    runs.end_trial(trial, state, 0.7 if state == "COMPLETE" else None, killed)

    run = client.get_run(run_id)
    assert run.info.run_name == "trial-0" and run.info.status == status
    assert run.data.tags["mlflow.parentRunId"] == runs.parent_id
    assert run.data.tags["optuna_state"] == state
    assert run.data.params == {"lr": "0.001"}
    assert [m.value for m in client.get_metric_history(run_id, "val_accuracy")] == [0.6, 0.7]
    assert ("best_val_accuracy" in run.data.metrics) is (state == "COMPLETE")
    runs.end_trial(trial, state, None, killed)  # a second end is a no-op, not an error


def test_a_trial_killed_with_its_worker_is_ended_failed_once(logger):
    client, runs = logger
    other = RunLogger(client, runs.experiment_id, runs.parent_id)  # the worker that died
    study = optuna.create_study(study_name="s")
    trial = study.ask()
    run_id = other.start_trial(trial, {})
    trial.set_user_attr("mlflow_run_id", run_id)
    study.tell(trial, state=TrialState.FAIL)  # what the heartbeat does to a dead worker's trial

    assert runs.end_orphans(study) == 1
    run = client.get_run(run_id)
    assert (run.info.status, run.data.tags["optuna_state"]) == ("FAILED", "FAIL")
    assert runs.end_orphans(study) == 0


def test_backfill_logs_each_missed_trial_once_from_its_record(logger):
    client, runs = logger
    study = optuna.create_study(study_name="s", direction="maximize")
    study.add_trial(finished(TrialState.COMPLETE, [0.6, 0.8]))
    study.add_trial(finished(TrialState.PRUNED, [0.3]))
    study.enqueue_trial({"lr": 1e-3})  # waiting: not finished, not logged

    assert runs.backfill(study) == [0, 1]
    found = client.search_runs([runs.experiment_id])
    children = [r for r in found if r.info.run_id != runs.parent_id]
    logged = {r.data.tags["optuna_trial_number"]: r for r in children}
    assert set(logged) == {"0", "1"}
    complete = logged["0"]
    assert complete.data.tags["backfilled"] == "true"
    assert complete.data.tags["optuna_state"] == "COMPLETE"
    assert complete.data.tags["mlflow.parentRunId"] == runs.parent_id
    assert complete.data.metrics["best_val_accuracy"] == pytest.approx(0.8)
    history_ = client.get_metric_history(complete.info.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in history_] == [(1, 0.6), (2, 0.8)]
    assert set(STEP_METRICS) <= set(complete.data.metrics)
    assert logged["1"].data.tags["optuna_state"] == "PRUNED"
    assert runs.backfill(study) == []  # logged once


def test_backfill_completes_a_run_its_tracking_left_running(logger):
    client, runs = logger
    study = optuna.create_study(study_name="s", direction="maximize")
    trial = study.ask({"lr": FloatDistribution(1e-4, 1.0, log=True)})
    other = RunLogger(client, runs.experiment_id, runs.parent_id)  # its server died mid-trial
    run_id = other.start_trial(trial, {"lr": 1e-3})
    other.log_step(trial, step(1, 0.6))
    trial.set_user_attr("history", history([0.6, 0.7, 0.8]))
    study.tell(trial, 0.8)

    assert runs.backfill(study) == [0]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["optuna_state"] == "COMPLETE"
    steps = [(m.step, m.value) for m in client.get_metric_history(run_id, "val_accuracy")]
    assert steps == [(1, 0.6), (2, 0.7), (3, 0.8)]  # step 1 not logged twice
    assert runs.backfill(study) == []


def test_re_runs_and_the_final_fit_are_runs_of_their_own(logger):
    client, runs = logger
    runs.log_rerun(4, {"lr": 1e-3}, seed=1004, value=0.91)
    runs.start_final(4, {"lr": 1e-3}, 12.5)
    runs.log_final_epoch(step(1))
    runs.end_final(0.93)
    by_name = {r.info.run_name: r for r in client.search_runs([runs.experiment_id])}
    rerun, final = by_name["rerun-4"], by_name["final-fit"]
    assert rerun.data.tags["source_trial"] == "4" and rerun.data.tags["rerun_seed"] == "1004"
    assert rerun.data.metrics["val_accuracy"] == 0.91 and rerun.info.status == "FINISHED"
    assert final.data.params["final_epochs"] == "12.5"  # tenths under --budget
    assert final.data.metrics["test_accuracy"] == 0.93 and final.info.status == "FINISHED"
    assert "val_accuracy" not in final.data.metrics  # the final fit has no validation split
    runs.end_final_killed()  # already ended: nothing changes
    assert client.get_run(final.info.run_id).info.status == "FINISHED"


def test_an_interrupted_final_fit_ends_killed(logger):
    client, runs = logger
    runs.start_final(2, {}, 5)
    runs.end_final_killed()
    assert client.get_run(runs.final_id).info.status == "KILLED"
