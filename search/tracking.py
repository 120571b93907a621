"""MLflow for one run, opened in one place: the run logger (``search.runs``), the checkpoint
store (``search.checkpoints``) and the registry (``search.registry``) share one
``MlflowClient``. ``TrialTracking`` is how they wrap the objective: a trial's run, its
per-step metrics, and the checkpoint of a trial that beats the study.

The search never waits on tracking: every HTTP call to an MLflow server is bounded (``HTTP``:
seconds, not MLflow's minutes of back-off), and the first call that fails turns tracking off
for the rest of the process (``Health``): one line on stderr names the trial, the trials go on
(the Optuna storage is the record), the summary says what MLflow is missing and the exit
status is 1. A later run of the study logs the trials MLflow missed (``backfill``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field

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

# MLflow's own defaults wait minutes on a dead or hung server (120 s a request, 7 retries with
# exponential back-off). These bound one call to about 3 x 10 s; a user's own settings win.
HTTP = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",  # seconds a request may take
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",  # 1 s, then 2 s between the retries
}


@dataclass
class Health:
    """Whether MLflow still answers this process: ``lost`` is its first failure, after which
    every tracking call is skipped."""

    uri: str
    lost: str = ""
    trial: int | None = None  # the trial being tracked when it failed
    missed: dict[str, None] = field(default_factory=dict)  # calls skipped, once each, in order

    def fail(self, what: str, exc: BaseException) -> None:
        where = f"at trial #{self.trial}" if self.trial is not None else f"in {what}"
        self.lost = f"{where}: {first_line(exc, self.uri)}"
        line = (
            f"warning: MLflow at {mask_url(self.uri)} failed {self.lost}; tracking is off for "
            "the rest of this run, the trials go on (the study keeps them), and re-running the "
            "study with the server up logs what MLflow missed"
        )
        from tqdm import tqdm  # between the progress bar's redraws

        tqdm.write(line, file=sys.__stderr__)


class Guarded:
    """``target`` with each method call skipped (``None``) once ``health`` is lost, and the
    first exception of a call recorded there instead of raised; attributes pass through."""

    def __init__(self, target: object, health: Health) -> None:
        self._target, self._health = target, health

    def __getattr__(self, name: str):
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            if self._health.lost:
                self._health.missed[name] = None
                return None
            try:
                return value(*args, **kwargs)
            except Exception as exc:  # MLflow raises many types, and requests' own
                self._health.fail(name, exc)
                self._health.missed[name] = None
                return None

        return call


@dataclass
class Tracking:
    uri: str
    runs: RunLogger
    checkpoints: CheckpointStore
    registry: Registry
    health: Health
    parent: tuple | None = None  # (study name, tags, params) of a parent run to start

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
    """MLflow for a run: its own parent run (tags and the settings as params), or in a child of
    ``--workers`` the supervisor's. Any failure is one line for the user (``TrackingError``)."""
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
        tracking.parent = (study.name, tags, settings)  # started once the study is open
    return tracking


PARENT = "mlflow_parent_run_id"  # the study's user attribute: the round's parent run


def join_parent(tracking: Tracking, study: optuna.Study) -> None:
    """Under the claim lock: the study's parent run while it is RUNNING (processes of other
    machines working on this study now, each a child under one parent), else a new parent run,
    recorded on the study. A ``--workers`` child has its supervisor's already."""
    if tracking.parent is None:
        return
    current = study.user_attrs.get(PARENT)
    if current and tracking.runs.is_running(current):
        tracking.runs.attach(current)
        return
    tracking.runs.start_parent(*tracking.parent)
    if tracking.runs.parent_id:
        study.set_user_attr(PARENT, tracking.runs.parent_id)


def open_tracking(config: TrackingConfig, parent_run_id: str | None) -> Tracking:
    """Connect (creating the experiment if needed); raises whatever MLflow raises."""
    if config.uri:
        # MLflow's model APIs (Model.log, mlflow.pytorch.load_model) read the global URI.
        mlflow.set_tracking_uri(config.uri)
    for name, value in HTTP.items():
        os.environ.setdefault(name, value)
    uri = mlflow.get_tracking_uri()
    database = sqlite_path(uri)
    # Processes started together on a fresh mlflow.db would all create and migrate its tables
    # ("duplicate column name: step"): opening the stores (tracking and registry) takes turns.
    # A fresh `mlflow server` does the same behind HTTP, so there: a few retries.
    with schema_lock(database) if database is not None else contextlib.nullcontext():
        client = MlflowClient(uri)
        experiment_id = _retried(lambda: _experiment(client, config.experiment), database)
        _retried(lambda: client.search_registered_models(max_results=1), database)
    health = Health(uri)
    return Tracking(
        uri=uri,
        runs=Guarded(RunLogger(client, experiment_id, parent_run_id), health),
        checkpoints=Guarded(CheckpointStore(client), health),
        registry=Guarded(Registry(client, config.registered_model), health),
        health=health,
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
        self.health = tracking.health

    def started(self, trial: optuna.Trial, params: dict) -> None:
        self.health.trial = trial.number
        run_id = self.runs.start_trial(trial, params)
        if run_id is not None:
            trial.set_user_attr("mlflow_run_id", run_id)

    def step(self, trial: optuna.Trial, metrics: StepMetrics) -> None:
        self.runs.log_step(trial, metrics)

    def ended(self, trial: optuna.Trial, state: str, value: float | None, killed: bool) -> None:
        self.runs.end_trial(trial, state, value, killed)
        self.health.trial = None

    def completed(self, done: Completed) -> None:
        if done.beats_study:
            self.checkpoints.save(self.runs.trials[done.trial.number], done.spec, done.state)
