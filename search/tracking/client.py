"""MLflow for one run, opened in one place: the run logger (``runs``), the checkpoint store
(``checkpoints``) and the registry (``registry``) share one ``MlflowClient``; ``hooks`` is how
the search talks to them.

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
from mlflow import MlflowClient

from search import disk
from search.config import TrackingConfig
from search.storage import schema_lock
from search.tracking.checkpoints import CheckpointStore
from search.tracking.registry import Registry
from search.tracking.runs import RunLogger
from search.urls import first_line, mask_url, sqlite_path

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
    every tracking call is skipped. The warning is printed at once, but for a full disk at the
    first call it skips: a disk that holds the study too stops the run first, and the run's
    own line says it (its summary says MLflow failed); if the trials go on, the warning comes
    one call later."""

    uri: str
    lost: str = ""
    trial: int | None = None  # the trial being tracked when it failed
    full: bool = False  # it failed for a full disk (not a server gone)
    missed: dict[str, None] = field(default_factory=dict)  # calls skipped, once each, in order
    pending: str = ""  # a warning not yet printed

    def fail(self, what: str, exc: BaseException) -> None:
        where = f"at trial #{self.trial}" if self.trial is not None else f"in {what}"
        full = disk.full(exc)
        self.full = full is not None
        said = first_line(exc, self.uri)
        if full is not None:
            said = f"the disk is full ({first_line(full, self.uri)})"
        self.lost = f"{where}: {said}"
        back = "with space freed" if full else "with the server up"
        self.pending = (
            f"warning: MLflow at {mask_url(self.uri)} failed {self.lost}; tracking is off for "
            "the rest of this run, the trials go on (the study keeps them), and re-running the "
            f"study {back} logs what MLflow missed"
        )
        if not full:
            self.warn()

    def skipped(self, what: str) -> None:
        self.missed[what] = None
        self.warn()

    def warn(self) -> None:
        if self.pending:
            from tqdm import tqdm  # between the progress bar's redraws

            tqdm.write(self.pending, file=sys.__stderr__)
            self.pending = ""


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
                self._health.skipped(name)
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


def default_uri() -> str:
    """The tracking URI MLflow would use: ``$MLFLOW_TRACKING_URI`` or its own default."""
    return mlflow.get_tracking_uri()
