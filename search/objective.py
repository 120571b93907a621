"""The Optuna objective: one trial = build the model from its params, train, report, prune.

Every epoch: ``trial.report(val_accuracy, epoch)`` (the dashboard's intermediate values), the
epoch's metrics appended to the trial's ``history`` user attribute (so tables and resumes need
only the storage), the tracker's ``log_epoch``, then the pruner's verdict. A diverging trial
(non-finite loss) ends PRUNED with the reason in its ``diverged`` user attribute, and the study
goes on. The process keeps the weights of its best trial in memory, for the final test-set
evaluation without retraining.
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
from search.grid import with_defaults
from search.space import TrialSpec, spec_from_params, suggest_params
from search.train import Diverged, EpochMetrics, train


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
        on_epoch: Callable[[int, EpochMetrics], None] | None = None,
    ) -> None:
        self.splits, self.epochs, self.seed, self.grid = splits, epochs, seed, grid
        self.tracker, self.on_epoch = tracker, on_epoch
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
                for name in ("train", "val", "test")
            }
            self._device_splits[device] = Splits(
                **moved, mean=self.splits.mean, std=self.splits.std, device=target
            )
        return self._device_splits[device]

    def __call__(self, trial: optuna.Trial) -> float:
        if self.claim is not None:
            self.claim.release()  # the trial is ours now: let other workers ask
        params = self.params(trial)
        spec = spec_from_params(params, self.epochs, self.seed + trial.number)
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

        def on_epoch(m: EpochMetrics) -> bool:
            history.append(asdict(m))
            trial.report(m.val_accuracy, m.epoch)
            trial.set_user_attr("history", history)
            if self.tracker is not None:
                self.tracker.log_epoch(trial, m)
            if self.on_epoch is not None:
                self.on_epoch(trial.number, m)
            # The last epoch is the full budget: a finished trial is COMPLETE, not PRUNED.
            return m.epoch < spec.train.epochs and trial.should_prune()

        start = time.perf_counter()
        try:
            result = train(model, splits, spec.train, on_epoch=on_epoch)
        except Diverged as exc:
            trial.set_user_attr("diverged", str(exc))
            raise optuna.TrialPruned(f"diverged: {exc}") from None
        finally:
            trial.set_user_attr("train_seconds", round(time.perf_counter() - start, 3))
            del model
            release_memory(splits.device)
        best = result.best
        trial.set_user_attr("best_epoch", best.epoch)
        trial.set_user_attr("epoch_seconds", [round(h["epoch_seconds"], 3) for h in history])
        if result.stopped_early:
            raise optuna.TrialPruned(f"pruned after epoch {result.history[-1].epoch}")
        self._keep_if_best(trial.number, best.val_accuracy, spec, result.best_state)
        if self.tracker is not None and _beats_study(trial, best.val_accuracy):
            self.tracker.save_checkpoint(trial, spec, result.best_state)
        return best.val_accuracy

    def _keep_if_best(self, number: int, value: float, spec: TrialSpec, state) -> None:
        if self.best is None or value > self.best.value:
            cpu_state = {k: v.detach().cpu().clone() for k, v in state.items()}
            self.best = BestWeights(number, value, spec, cpu_state)


def _beats_study(trial: optuna.Trial, value: float) -> bool:
    """Better than every trial completed so far, in any worker (this one is not told yet)."""
    done = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return all(value > t.value for t in done)


def release_memory(device: torch.device) -> None:
    """Long-running workers must not grow with the trial count (optuna#1224, #5931)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
