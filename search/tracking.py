"""MLflow for one run, opened in one place: the run logger (``search.runs``), the checkpoint
store (``search.checkpoints``) and the registry (``search.registry``) share one
``MlflowClient``. ``TrialTracking`` is how they wrap the objective: a trial's run, its
per-step metrics, and the checkpoint of a trial that beats the study.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import mlflow
import optuna
import torch
from mlflow import MlflowClient

from search.checkpoints import CheckpointStore
from search.config import RunConfig, TrackingConfig, params
from search.objective import Completed, TrialHooks
from search.registry import Registry
from search.runs import RunLogger
from search.storage import schema_lock
from search.train import StepMetrics
from search.urls import TrackingError, first_line, mask_url, sqlite_path


@dataclass
class Tracking:
    uri: str
    runs: RunLogger
    checkpoints: CheckpointStore
    registry: Registry

    def log_results(self, study: optuna.Study, metrics: dict, files, figures, matrix) -> None:
        """The parent run's results: tables, pictures, per-class accuracy, Optuna's plots."""
        from search.figures import optuna_html, per_class  # plotly: only when tracking

        page, _ = optuna_html(study)
        self.runs.log_results(
            metrics,
            files=files,
            figures=figures,
            dicts={"per_class_accuracy.json": per_class(matrix)},
            texts={"optuna_plots.html": page},
        )

    def register(self, study: optuna.Study, best, model, test_accuracy: float, example) -> str:
        """The champion logged under the parent run and registered (``search.registry``)."""
        runs = (self.runs.parent_id, self.runs.final_id)
        return self.registry.register(study, best, model, test_accuracy, example, runs)


def open_for_run(config: RunConfig, device: str) -> Tracking:
    """MLflow for a run: its own parent run (tags and the settings as params), or with
    ``--worker`` the supervisor's. Any failure is one line for the user (``TrackingError``)."""
    parent = config.workers.parent_run_id
    try:
        tracking = open_tracking(config.tracking, parent)
    except Exception as exc:  # MLflow raises many types; one line for the user
        uri = config.tracking.uri
        line = f"--tracking-uri {mask_url(uri or 'default')}: {first_line(exc, uri)}"
        raise TrackingError(line) from None
    if parent is None:
        study = config.study
        tags = {
            "storage": mask_url(study.storage),
            "sampler": study.sampler,
            "pruner": study.pruner,
            "seed": str(study.seed),
            "torch_version": torch.__version__,
            "device": device,
        }
        settings = {**params(config), "tracking_uri": mask_url(tracking.uri)}
        tracking.runs.start_parent(study.name, tags, settings)
    return tracking


def open_tracking(config: TrackingConfig, parent_run_id: str | None) -> Tracking:
    """Connect (creating the experiment if needed); raises whatever MLflow raises."""
    if config.uri:
        # MLflow's model APIs (Model.log, mlflow.pytorch.load_model) read the global URI.
        mlflow.set_tracking_uri(config.uri)
    uri = mlflow.get_tracking_uri()
    database = sqlite_path(uri)
    # Processes started together on a fresh mlflow.db would all create and migrate its tables
    # ("duplicate column name: step"): opening the stores (tracking and registry) takes turns.
    # A fresh `mlflow server` does the same behind HTTP, so there: a few retries.
    with schema_lock(database) if database is not None else contextlib.nullcontext():
        client = MlflowClient(uri)
        experiment_id = _retried(lambda: _experiment(client, config.experiment), database)
        _retried(lambda: client.search_registered_models(max_results=1), database)
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


RETRIES = 5  # a fresh server's first answers; 0.5, 1, 2, 4 s apart: about 8 s in all


def _retried(call, database):
    """``call()``; against a server, retried while the server is still setting itself up."""
    for attempt in range(RETRIES):
        try:
            return call()
        except mlflow.exceptions.MlflowException:
            if database is not None or attempt == RETRIES - 1:
                raise
            time.sleep(0.5 * 2**attempt)


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
