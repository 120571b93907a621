"""MLflow for one run, opened in one place: the run logger (``search.runs``), the checkpoint
store (``search.checkpoints``) and the registry (``search.registry``) share one
``MlflowClient``. ``TrialTracking`` is how they wrap the objective: a trial's run, its
per-step metrics, and the checkpoint of a trial that beats the study.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import optuna
from mlflow import MlflowClient

from search.checkpoints import CheckpointStore
from search.config import TrackingConfig
from search.objective import Completed, TrialHooks
from search.registry import Registry
from search.runs import RunLogger
from search.train import StepMetrics


@dataclass
class Tracking:
    uri: str
    runs: RunLogger
    checkpoints: CheckpointStore
    registry: Registry


def open_tracking(config: TrackingConfig, parent_run_id: str | None) -> Tracking:
    """Connect (creating the experiment if needed); raises whatever MLflow raises."""
    if config.uri:
        # MLflow's model APIs (Model.log, mlflow.pytorch.load_model) read the global URI.
        mlflow.set_tracking_uri(config.uri)
    uri = mlflow.get_tracking_uri()
    client = MlflowClient(uri)
    experiment_id = _experiment(client, config.experiment)
    return Tracking(
        uri=uri,
        runs=RunLogger(client, experiment_id, parent_run_id),
        checkpoints=CheckpointStore(client),
        registry=Registry(client, config.registered_model),
    )


def _experiment(client: MlflowClient, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except mlflow.exceptions.MlflowException:  # another worker created it just now
        return client.get_experiment_by_name(name).experiment_id


class TrialTracking(TrialHooks):
    """A child run per trial (its id in the trial's ``mlflow_run_id``), per-step metrics, and
    the weights of a trial that beats the study (any worker can then register it)."""

    def __init__(self, tracking: Tracking) -> None:
        self.runs, self.checkpoints = tracking.runs, tracking.checkpoints

    def started(self, trial: optuna.Trial, params: dict) -> None:
        trial.set_user_attr("mlflow_run_id", self.runs.start_trial(trial, params))

    def step(self, trial: optuna.Trial, metrics: StepMetrics) -> None:
        self.runs.log_step(trial, metrics)

    def ended(self, trial: optuna.Trial, state: str, value: float | None, killed: bool) -> None:
        self.runs.end_trial(trial, state, value, killed)

    def completed(self, done: Completed) -> None:
        if done.beats_study:
            self.checkpoints.save(self.runs.trials[done.trial.number], done.spec, done.state)
