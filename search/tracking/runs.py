"""MLflow runs of one invocation: the parent run, a child run per trial, the final fit's run.

Layout in the MLflow UI (experiment = ``--experiment``, default the study name):

- parent run ``<study>-<time>``: tags (study, masked storage, sampler, pruner, seed, git
  commit, torch version, device), the settings as params, and at the end the test accuracy and,
  under ``results/``, the confusion matrix, per-class accuracy, sample predictions, trials
  table and Optuna plots. Processes working on a study at the same time (other machines, a
  Slurm array) share one parent run, recorded on the study as ``mlflow_parent_run_id`` and
  joined while it is RUNNING; the process that ends the study ends it. A study resumed after
  that gets a new one. Trials are never logged twice: each runs in exactly one process.
  A trial that MLflow missed (its server was down, or ``--no-mlflow``) is logged by a later
  invocation from the trial's own record, tagged ``backfilled`` (``RunLogger.backfill``).
- child run ``trial-<n>`` per trial: params (the search-space names), per-step metrics with
  ``step`` = the Optuna step, ``best_val_accuracy``, tags ``optuna_state`` (COMPLETE, PRUNED,
  FAIL) and ``optuna_trial_number``; the trial holds ``mlflow_run_id``.
- child run ``final-fit``: the best configuration trained again on train + validation (tag
  ``source_trial``), its per-epoch training metrics and ``test_accuracy``.

Everything goes through one ``MlflowClient``; pictures, dicts and HTML are logged from memory.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import optuna
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

from search.space import full_params
from search.train import StepMetrics

FINISHED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)
STEP_METRICS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "step_seconds",
)
COSTS = ("latency_ms", "n_parameters")
FINAL_METRICS = ("epoch", "train_loss", "train_accuracy", "step_seconds")


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=10,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _params(values: dict[str, Any]) -> list[Param]:
    return [Param(k, str(v)) for k, v in values.items()]


def _trial_tags(t: optuna.trial.FrozenTrial, study: str) -> dict[str, str]:
    return {"optuna_trial_number": str(t.number), "study": study, "backfilled": "true"}


class RunLogger:
    """The runs of one process under ``parent_id`` (a ``--workers`` child is given its
    supervisor's; anyone else joins the study's with ``attach`` or starts one)."""

    def __init__(self, client: MlflowClient, experiment_id: str, parent_id: str | None) -> None:
        self.client, self.experiment_id, self.parent_id = client, experiment_id, parent_id
        self.trials: dict[int, str] = {}  # trial number -> run id, for this process's trials
        self.closed: set[int] = set()  # FAIL trials whose runs are known to be ended
        self.final_id: str | None = None
        self.final_open = False  # its run started and not yet ended

    def start_parent(self, study_name: str, tags: dict[str, str], params: dict) -> None:
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{study_name}-{time.strftime('%Y%m%d-%H%M%S')}",
            tags={"study": study_name, "git_commit": git_commit(), **tags},
        )
        self.parent_id = run.info.run_id
        self.client.log_batch(self.parent_id, params=_params(params))

    def is_running(self, run_id: str) -> bool:
        try:
            return self.client.get_run(run_id).info.status == "RUNNING"
        except MlflowException:  # not on this server (another --tracking-uri), or deleted
            return False

    def attach(self, run_id: str) -> None:
        """Log under ``run_id``, the parent run another process of this study started."""
        self.parent_id = run_id

    def _child(self, name: str, tags: dict[str, str], params: dict) -> str:
        if self.parent_id:
            tags = {**tags, "mlflow.parentRunId": self.parent_id}
        run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        self.client.log_batch(run.info.run_id, params=_params(params))
        return run.info.run_id

    # --- trials -----------------------------------------------------------------------------

    def start_trial(self, trial: optuna.Trial, params: dict) -> str:
        tags = {"optuna_trial_number": str(trial.number), "study": trial.study.study_name}
        self.trials[trial.number] = self._child(f"trial-{trial.number}", tags, params)
        return self.trials[trial.number]

    def log_step(self, trial: optuna.Trial, m: StepMetrics) -> None:
        ts = _now_ms()
        metrics = [Metric(k, float(getattr(m, k)), ts, m.step) for k in STEP_METRICS]
        self.client.log_batch(self.trials[trial.number], metrics=metrics)

    def end_trial(self, trial: optuna.Trial, state: str, value: float | None, killed: bool):
        run_id = self.trials.pop(trial.number, None)
        if run_id is None:
            return
        self.client.set_tag(run_id, "optuna_state", state)
        if value is not None:
            self.client.log_metric(run_id, "best_val_accuracy", value)
        for key in COSTS:  # measured for --max-latency/--max-params (search.limits)
            if key in trial.user_attrs:
                self.client.log_metric(run_id, key, float(trial.user_attrs[key]))
        status = "KILLED" if killed else "FAILED" if state == "FAIL" else "FINISHED"
        self.client.set_terminated(run_id, status)

    def end_orphans(self, study: optuna.Study) -> int:
        """Runs of trials that died with their worker (SIGKILL) are still RUNNING in MLflow:
        end them FAILED. Called by whichever worker sees the stale trial failed."""
        ended = 0
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
            run_id = t.user_attrs.get("mlflow_run_id")
            if not run_id or t.number in self.trials or t.number in self.closed:
                continue
            self.closed.add(t.number)
            if self.client.get_run(run_id).info.status == "RUNNING":
                self.client.set_tag(run_id, "optuna_state", "FAIL")
                self.client.set_terminated(run_id, "FAILED")
                ended += 1
        return ended

    def backfill(self, study: optuna.Study) -> list[int]:
        """Finished trials MLflow has no run of, logged now from the trial's own record
        (params, per-step history, state, times) as children of this invocation; a trial run
        left RUNNING (its tracking failed mid-trial) gets the steps it missed and is ended.
        Returns the trial numbers it logged or ended."""
        logged = self._trial_runs(study.study_name)
        done = []
        for t in study.get_trials(deepcopy=False, states=FINISHED):
            run = logged.get(t.number)
            if run is None:
                tags = _trial_tags(t, study.study_name)
                self._log_trial(t, self._child(f"trial-{t.number}", tags, full_params(t)), 0)
            elif run.info.status == "RUNNING" and t.number not in self.trials:
                present = self.client.get_metric_history(run.info.run_id, "val_accuracy")
                self._log_trial(t, run.info.run_id, max((m.step for m in present), default=0))
            else:
                continue
            done.append(t.number)
        return done

    def _trial_runs(self, study_name: str) -> dict[int, Any]:
        """This experiment's trial runs of ``study_name``, by trial number."""
        runs, token = {}, None
        while True:
            ids = [self.experiment_id]
            page = self.client.search_runs(ids, max_results=1000, page_token=token)
            for run in page:
                tags = run.data.tags
                if tags.get("study") == study_name and "optuna_trial_number" in tags:
                    runs[int(tags["optuna_trial_number"])] = run
            token = page.token
            if not token:
                return runs

    def _log_trial(self, t: optuna.trial.FrozenTrial, run_id: str, after_step: int) -> None:
        """``t``'s steps past ``after_step``, its value and state; the run ended."""
        start = t.datetime_start.timestamp() * 1000 if t.datetime_start else _now_ms()
        metrics, ts = [], start
        for h in t.user_attrs.get("history", []):
            ts += h.get("step_seconds", 0) * 1000
            if h["step"] > after_step:
                metrics += [Metric(k, float(h[k]), int(ts), h["step"]) for k in STEP_METRICS]
        if t.values is not None:
            metrics.append(Metric("best_val_accuracy", t.values[0], int(ts), 0))
        for at in range(0, len(metrics), 1000):  # MLflow's limit per batch
            self.client.log_batch(run_id, metrics=metrics[at : at + 1000])
        self.client.set_tag(run_id, "optuna_state", t.state.name)
        end = t.datetime_complete.timestamp() * 1000 if t.datetime_complete else None
        status = "FAILED" if t.state.name == "FAIL" else "FINISHED"
        self.client.set_terminated(run_id, status, int(end) if end else None)

    # --- the winner's re-runs and the final fit ---------------------------------------------

    def log_rerun(self, trial_number: int, params: dict, seed: int, value: float) -> None:
        """A finished run ``rerun-<n>``: a top trial trained again on another seed."""
        tags = {"source_trial": str(trial_number), "rerun_seed": str(seed)}
        run_id = self._child(f"rerun-{trial_number}", tags, params)
        self.client.log_metric(run_id, "val_accuracy", value)
        self.client.set_terminated(run_id, "FINISHED")

    def start_final(self, trial_number: int, params: dict, epochs: float) -> None:
        params = {**params, "final_epochs": f"{epochs:g}"}  # tenths under --budget
        self.final_id = self._child("final-fit", {"source_trial": str(trial_number)}, params)
        self.final_open = True

    def log_final_epoch(self, m: StepMetrics) -> None:
        ts = _now_ms()
        metrics = [Metric(k, float(getattr(m, k)), ts, m.step) for k in FINAL_METRICS]
        self.client.log_batch(self.final_id, metrics=metrics)

    def end_final(self, test_accuracy: float) -> None:
        if self.final_id is not None:
            self.client.log_metric(self.final_id, "test_accuracy", test_accuracy)
            self.client.set_terminated(self.final_id, "FINISHED")
            self.final_open = False

    def adopt_final(self, run_id: str) -> None:
        """Log this process's final fit into ``run_id``, a final fit an earlier process
        trained and kept, whose test accuracy and end it did not live to log."""
        self.final_id, self.final_open = run_id, True

    def end_killed(self, run_id: str) -> None:
        """``run_id``, left RUNNING by a process that died, ended KILLED (one deleted since, or
        on another server, is left alone)."""
        if self.is_running(run_id):
            self.client.set_terminated(run_id, "KILLED")

    def end_final_killed(self) -> None:
        """A final fit interrupted before its test accuracy: its run ends KILLED."""
        if self.final_open:
            self.client.set_terminated(self.final_id, "KILLED")
            self.final_open = False

    # --- the end of the run -----------------------------------------------------------------

    def log_results(
        self,
        metrics: dict[str, float],
        files: list[Path] = (),
        figures: dict[str, Any] | None = None,
        dicts: dict[str, dict] | None = None,
        texts: dict[str, str] | None = None,
    ) -> None:
        """Under ``results/`` of the parent run: ``files`` as they are, matplotlib ``figures``,
        ``dicts`` (JSON) and ``texts`` from memory, by file name."""
        run, ts = self.parent_id, _now_ms()
        for path in files:
            self.client.log_artifact(run, str(path), "results")
        for name, figure in (figures or {}).items():
            self.client.log_figure(run, figure, f"results/{name}")
        for name, value in (dicts or {}).items():
            self.client.log_dict(run, value, f"results/{name}")
        for name, text in (texts or {}).items():
            self.client.log_text(run, text, f"results/{name}")
        self.client.log_batch(run, metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()])

    def end_parent(self, status: str) -> None:
        if self.parent_id:
            self.client.set_terminated(self.parent_id, status)
