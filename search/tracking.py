"""MLflow tracking: a parent run per invocation, a child run per trial, the champion model.

Layout in the MLflow UI (experiment = ``--experiment``, default the study name):

- parent run ``<study>-<time>``: tags (study, masked storage, sampler, pruner, seed, git
  commit, torch version, device), the CLI settings as params, and at the end the test
  accuracy, confusion matrix, per-class accuracy, sample predictions, trials table and Optuna
  plots. Each invocation starts a new parent run (a resumed study gets a second parent run);
  trials are never logged twice, since each trial runs in exactly one invocation.
- child run ``trial-<n>`` per trial: params (the search-space names), per-step metrics with
  ``step`` = the Optuna step (``epoch`` among them, fractional), ``best_val_accuracy``, tag
  ``optuna_state`` (COMPLETE/PRUNED/FAIL) and ``optuna_trial_number``; the trial holds
  ``mlflow_run_id``. A trial that beats the study's
  best so far also stores its weights as ``checkpoint/checkpoint.pt``, so whichever worker ends
  the study can register the best model without retraining.
- child run ``final-fit``: the best configuration trained again for ``--final-epochs`` on
  train + validation (tag ``source_trial``), its per-epoch training metrics and
  ``test_accuracy``.
- the champion: the final fit's model (or, with ``--final-epochs 0``, the best trial's), taking
  ``ToTensor`` images in [0, 1] and normalizing itself, logged once with
  ``mlflow.pytorch.log_model`` and registered; the new version gets the alias ``champion``
  unless the current champion is at least as good.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import mlflow
import numpy as np
import optuna
import torch
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from data import CLASSES
from models import config_from_dict
from search.packaging import log_champion
from search.space import TrialSpec
from search.train import StepMetrics

ALIAS = "champion"
STEP_METRICS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                "step_seconds")  # fmt: skip
FINAL_METRICS = ("epoch", "train_loss", "train_accuracy", "step_seconds")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=10)  # fmt: skip
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def _now_ms() -> int:
    return int(time.time() * 1000)


class Tracker:
    def __init__(self, uri: str | None, experiment: str, registered_model: str) -> None:
        if uri:
            mlflow.set_tracking_uri(uri)
        self.uri = mlflow.get_tracking_uri()
        self.client = MlflowClient(self.uri)
        self.registered_model = registered_model
        self.experiment_id = self._experiment(experiment)
        self.parent_id: str | None = None
        self.final_id: str | None = None  # the final fit's run
        self.runs: dict[int, str] = {}  # trial number -> run id, for this process's trials
        self.closed: set[int] = set()  # FAIL trials whose runs are known to be ended

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except mlflow.exceptions.MlflowException:  # another worker created it just now
            return self.client.get_experiment_by_name(name).experiment_id

    # --- runs ---------------------------------------------------------------------------

    def start_parent(self, study_name: str, tags: dict[str, str], params: dict) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{study_name}-{time.strftime('%Y%m%d-%H%M%S')}",
            tags={"study": study_name, "git_commit": git_commit(), **tags},
        )
        self.parent_id = run.info.run_id
        self.client.log_batch(self.parent_id, params=[Param(k, str(v)) for k, v in params.items()])
        return self.parent_id

    def start_trial(self, trial: optuna.Trial, params: dict) -> str:
        tags = {"optuna_trial_number": str(trial.number), "study": trial.study.study_name}
        if self.parent_id:
            tags["mlflow.parentRunId"] = self.parent_id
        run = self.client.create_run(
            self.experiment_id, run_name=f"trial-{trial.number}", tags=tags
        )
        run_id = run.info.run_id
        self.runs[trial.number] = run_id
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return run_id

    def log_step(self, trial: optuna.Trial, m: StepMetrics) -> None:
        ts = _now_ms()
        metrics = [Metric(k, float(getattr(m, k)), ts, m.step) for k in STEP_METRICS]
        self.client.log_batch(self.runs[trial.number], metrics=metrics)

    def start_final(self, trial_number: int, params: dict, epochs: int) -> None:
        tags = {"source_trial": str(trial_number)}
        if self.parent_id:
            tags["mlflow.parentRunId"] = self.parent_id
        run = self.client.create_run(self.experiment_id, run_name="final-fit", tags=tags)
        self.final_id = run.info.run_id
        params = {**params, "final_epochs": epochs}
        self.client.log_batch(self.final_id, params=[Param(k, str(v)) for k, v in params.items()])

    def log_final_epoch(self, m: StepMetrics) -> None:
        ts = _now_ms()
        metrics = [Metric(k, float(getattr(m, k)), ts, m.step) for k in FINAL_METRICS]
        self.client.log_batch(self.final_id, metrics=metrics)

    def end_final(self, test_accuracy: float) -> None:
        if self.final_id is not None:
            self.client.log_metric(self.final_id, "test_accuracy", test_accuracy)
            self.client.set_terminated(self.final_id, "FINISHED")

    def end_trial(
        self, trial: optuna.Trial, state: str, value: float | None, killed=False
    ) -> None:
        run_id = self.runs.pop(trial.number, None)
        if run_id is None:
            return
        self.client.set_tag(run_id, "optuna_state", state)
        if value is not None:
            self.client.log_metric(run_id, "best_val_accuracy", value)
        status = "KILLED" if killed else "FAILED" if state == "FAIL" else "FINISHED"
        self.client.set_terminated(run_id, status)

    def end_parent(self, status: str = "FINISHED") -> None:
        if self.parent_id:
            self.client.set_terminated(self.parent_id, status)

    def end_orphans(self, study: optuna.Study) -> int:
        """Runs of trials that died with their worker (SIGKILL) are still RUNNING in MLflow:
        end them FAILED. Called by whichever worker sees the stale trial failed."""
        ended = 0
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
            run_id = t.user_attrs.get("mlflow_run_id")
            if not run_id or t.number in self.runs or t.number in self.closed:
                continue
            self.closed.add(t.number)
            if self.client.get_run(run_id).info.status == "RUNNING":
                self.client.set_tag(run_id, "optuna_state", "FAIL")
                self.client.set_terminated(run_id, "FAILED")
                ended += 1
        return ended

    # --- checkpoints: the best weights, wherever they were trained ------------------------

    def save_checkpoint(self, trial: optuna.Trial, spec: TrialSpec, state: dict) -> None:
        run_id = self.runs.get(trial.number)
        if run_id is None:
            return
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "checkpoint.pt"
            torch.save({"arch": spec.model.arch, "config": asdict(spec.model),
                        "state_dict": {k: v.cpu() for k, v in state.items()}}, path)  # fmt: skip
            self.client.log_artifact(run_id, str(path), "checkpoint")

    def load_checkpoint(self, trial: optuna.trial.FrozenTrial) -> torch.nn.Module | None:
        run_id = trial.user_attrs.get("mlflow_run_id")
        if not run_id:
            return None
        from models import build_model

        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = self.client.download_artifacts(run_id, "checkpoint/checkpoint.pt", tmp)
            except (mlflow.exceptions.MlflowException, OSError):
                return None
            saved = torch.load(path, weights_only=True)
        model = build_model(config_from_dict(saved["arch"], saved["config"]))
        model.load_state_dict(saved["state_dict"])
        return model

    # --- the end of a study -------------------------------------------------------------

    def log_results(self, files: list[Path], metrics: dict[str, float]) -> None:
        for path in files:
            self.client.log_artifact(self.parent_id, str(path), "results")
        ts = _now_ms()
        self.client.log_batch(
            self.parent_id, metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()]
        )

    def champion(self):
        try:
            return self.client.get_model_version_by_alias(self.registered_model, ALIAS)
        except mlflow.exceptions.MlflowException:
            return None

    def is_champion(self, study_name: str, trial_number: int):
        """The registered champion if it already is this study's trial, else ``None``."""
        current = self.champion()
        if current is None:
            return None
        key = (current.tags.get("study"), current.tags.get("trial_number"))
        return current if key == (study_name, str(trial_number)) else None

    def load_version(self, version) -> torch.nn.Module:
        """A registered version's model (a standalone ``nn.Sequential``)."""
        uri = f"models:/{self.registered_model}/{version.version}"
        return mlflow.pytorch.load_model(uri, map_location="cpu")

    def register_champion(
        self,
        study: optuna.Study,
        model: torch.nn.Module,
        test_accuracy: float,
        example: np.ndarray,
    ) -> str:
        """Log and register the champion (a standalone module, see ``models.export``) unless
        the current champion is as good; returns a line for the summary. Call under the
        study's claim lock: several workers may end the study at once, and only one of them
        may register."""
        best = study.best_trial
        current = self.champion()
        if current is not None:
            same = self.is_champion(study.study_name, best.number) is not None
            if same or float(current.tags.get("val_accuracy", "-1")) >= best.value:
                return f"champion unchanged: {self.registered_model} version {current.version}"
        info = log_champion(model, example, self.parent_id, self.registered_model)
        version = str(info.registered_model_version)
        tags = {"study": study.study_name, "trial_number": best.number,
                "val_accuracy": best.value, "test_accuracy": test_accuracy,
                "params": json.dumps(best.params),
                "final_fit_run_id": self.final_id or "none (the trial's own weights)"}  # fmt: skip
        for key, value in tags.items():
            self.client.set_model_version_tag(self.registered_model, version, key, str(value))
        description = describe_model(study.study_name, best.number, test_accuracy)
        self.client.update_model_version(self.registered_model, version, description=description)
        self.client.set_registered_model_alias(self.registered_model, ALIAS, version)
        return f"champion: {self.registered_model} version {version} (alias @{ALIAS})"


def describe_model(study_name: str, trial_number: int, test_accuracy: float) -> str:
    return (
        f"Fashion-MNIST classifier from Optuna study '{study_name}', trial {trial_number}; "
        f"held-out test accuracy {test_accuracy:.4f}.\n\n"
        "mlflow.pytorch.load_model('models:/<name>@champion') gives an ordinary "
        "torch.nn.Sequential (eval(), train(), to(device), fine-tuning), built from torch.nn "
        "layers only. Input: float32 tensor (N, 1, 28, 28) with pixels in [0, 1] (what "
        "torchvision's ToTensor gives); its first layer, normalize, applies the training "
        "normalization. Output: (N, 10) logits; argmax gives the class index.\n\n"
        "mlflow models serve / mlflow.pyfunc.load_model answer one row per image: "
        "class_index, class_name, probabilities.\n\n"
        "Classes: " + ", ".join(f"{i} {name}" for i, name in enumerate(CLASSES))
    )
