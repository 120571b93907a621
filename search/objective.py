"""The Optuna objective: one trial = build the model from its params, train, report, prune.

Every step (a fixed number of training images): ``trial.report(val_accuracy, step)`` (the
dashboard's intermediate values), the step's metrics appended to the trial's ``history`` user
attribute (so tables and resumes need only the storage), the tracker's ``log_step``, then the
pruner's verdict. The trial's value is the validation accuracy after its whole budget, on the
whole validation split. A diverging trial (non-finite loss) ends PRUNED with the reason in its
``diverged`` user attribute, and the study goes on; so does a trial stopped because the run's
``--budget`` would not let it finish (``stopped``: budget). The process keeps the weights of
its best trial in memory, for the final evaluation without retraining.
"""

from __future__ import annotations

import gc
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import optuna
import torch

from data import Splits
from models import build_model, count_parameters
from search.artifacts import upload_trial_pictures
from search.budget import Budget
from search.grid import with_defaults
from search.space import TrialSpec, spec_from_params, suggest_params
from search.train import Diverged, StepMetrics, train


@dataclass
class BestWeights:
    trial_number: int
    value: float
    spec: TrialSpec
    state: dict[str, torch.Tensor]  # on the CPU


class Objective:
    def __init__(
        self,
        splits: Splits,
        epochs: int,
        seed: int,
        grid: dict[str, list] | None = None,
        tracker=None,
        on_step: Callable[[int, StepMetrics], None] | None = None,
        steps: int | None = None,
        budget: Budget | None = None,
        artifacts=None,
    ) -> None:
        self.splits, self.epochs, self.seed, self.grid = splits, epochs, seed, grid
        self.tracker, self.on_step, self.steps = tracker, on_step, steps
        self.budget = budget or Budget(None)
        self.artifacts = artifacts  # an Optuna artifact store, or None
        self.best: BestWeights | None = None
        self.claim = None  # set by the study loop: released once our trial is claimed
        self._device_splits = {splits.device.type: splits}

    def params(self, trial: optuna.Trial) -> dict[str, Any]:
        if self.grid is None:
            return suggest_params(trial)
        combo = {k: trial.suggest_categorical(k, values) for k, values in self.grid.items()}
        params = with_defaults(combo)
        # Params fixed by grid defaults are not Optuna params: keep them visible anyway.
        trial.set_user_attr("fixed_params", {k: v for k, v in params.items() if k not in combo})
        return params

    def splits_for(self, params: dict[str, Any]) -> Splits:
        """A grid may name ``device`` per run: copy the data there once and reuse it."""
        device = params.get("device", self.splits.device.type)
        if device not in self._device_splits:
            from search.device import resolve_device

            target = resolve_device(device)
            moved = {
                name: tuple(t.to(target) for t in getattr(self.splits, name))
                for name in ("train", "val", "test", "probe")
            }
            self._device_splits[device] = Splits(
                **moved, mean=self.splits.mean, std=self.splits.std, device=target
            )
        return self._device_splits[device]

    def __call__(self, trial: optuna.Trial) -> float:
        if self.claim is not None:
            self.claim.release()  # the trial is ours now: let other workers ask
        params = self.params(trial)
        spec = spec_from_params(params, self.epochs, self.seed + trial.number, self.steps)
        splits = self.splits_for(params)
        run_id = self.tracker.start_trial(trial, params) if self.tracker else None
        if run_id:
            trial.set_user_attr("mlflow_run_id", run_id)
        try:
            value = self._train(trial, spec, splits)
        except optuna.TrialPruned:
            self._end(trial, "PRUNED", None)
            raise
        except BaseException as exc:
            self._end(trial, "FAIL", None, killed=isinstance(exc, KeyboardInterrupt))
            raise
        self._end(trial, "COMPLETE", value)
        return value

    def _end(self, trial: optuna.Trial, state: str, value: float | None, killed=False) -> None:
        if self.tracker is not None:
            self.tracker.end_trial(trial, state, value, killed=killed)

    def _train(self, trial: optuna.Trial, spec: TrialSpec, splits: Splits) -> float:
        torch.manual_seed(spec.train.seed)
        model = build_model(spec.model)
        trial.set_user_attr("n_parameters", count_parameters(model))
        trial.set_user_attr("device", splits.device.type)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        history: list[dict[str, float]] = []
        over_budget = False

        def on_step(m: StepMetrics) -> bool:
            nonlocal over_budget
            history.append(asdict(m))
            trial.report(m.val_accuracy, m.step)
            trial.set_user_attr("history", history)
            if self.tracker is not None:
                self.tracker.log_step(trial, m)
            if self.on_step is not None:
                self.on_step(trial.number, m)
            steps_left = len_steps - m.step
            over_budget = not self.budget.allows(m.step_seconds * steps_left * 1.1)
            # The last step is the full budget: a finished trial is COMPLETE, not PRUNED.
            return steps_left > 0 and (over_budget or trial.should_prune())

        len_steps = spec.train.steps or spec.train.epochs
        start = time.perf_counter()
        probe = splits.probe if self.grid is None else None  # a grid reports whole epochs
        try:
            result = train(model, splits.train, spec.train, splits.val, probe, on_step)
        except Diverged as exc:
            trial.set_user_attr("diverged", str(exc))
            raise optuna.TrialPruned(f"diverged: {exc}") from None
        finally:
            trial.set_user_attr("train_seconds", round(time.perf_counter() - start, 3))
            images = round(history[-1]["epoch"] * len(splits.train[1])) if history else 0
            trial.set_user_attr("train_images", images)
            trial.set_user_attr("step_seconds", [round(h["step_seconds"], 3) for h in history])
        if result.stopped_early:
            del model
            release_memory(splits.device)
            if over_budget:
                trial.set_user_attr("stopped", "budget: it could not finish in the time left")
            raise optuna.TrialPruned(f"pruned after step {result.last.step}")
        value = result.last.val_accuracy
        self._keep_if_best(trial, value, spec, model, splits, result.val_predictions)
        del model
        release_memory(splits.device)
        return value

    def _keep_if_best(self, trial, value: float, spec: TrialSpec, model, splits, predicted):
        """Weights in memory when best in this process; when best in the study, also its
        checkpoint in MLflow and its pictures as Optuna artifacts (while it still runs)."""
        beats_process = self.best is None or value > self.best.value
        beats_study = _beats_study(trial, value)
        if beats_study and self.artifacts is not None:
            upload_trial_pictures(self.artifacts, trial, predicted, splits)
        if not (beats_process or (beats_study and self.tracker is not None)):
            return
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if beats_process:
            self.best = BestWeights(trial.number, value, spec, state)
        if beats_study and self.tracker is not None:
            self.tracker.save_checkpoint(trial, spec, state)


def _beats_study(trial: optuna.Trial, value: float) -> bool:
    """Better than every trial completed so far, in any worker (this one is not told yet)."""
    done = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return all(value > t.value for t in done)


def release_memory(device: torch.device) -> None:
    """Long-running workers must not grow with the trial count (optuna#1224, #5931)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
