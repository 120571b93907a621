"""The Optuna objective: one trial = sample its params, build the model, train, report, prune.

Every step (a fixed number of training images) is reported to Optuna with
``trial.report(val_accuracy, step)`` (the dashboard's intermediate values) and appended to
the trial's ``history`` user attribute (so tables and resumes need only the storage); then the
pruner decides. The trial's value is the validation accuracy after its whole budget, on the
whole validation split. A diverging trial (non-finite loss) ends PRUNED with the reason in its
``diverged`` user attribute, and the study goes on; so does a trial stopped because the run's
``--budget`` would not let it finish (``stopped``: budget). A configuration that cannot run
here at all (``search.feasible``) ends FAIL before training, with ``cannot_run``. Who runs a
trial (``worker``, for crash recovery) is recorded when it is claimed (``search.study``).

What happens around a trial besides training it (MLflow runs, checkpoints, pictures, the
progress bar) is a list of ``TrialHooks`` (``search.hooks``), called at the trial's start,
every step, its end, and when it completes (with whether it beats every complete trial of the
study). The process keeps the weights of its own best trial in memory; ``OwnWeights`` hands
them to the end of the study.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
import torch

from data import Splits
from models import build_model, count_parameters
from models.user import UserModelConfig, check_output
from search import disk, feasible
from search.budget import MARGIN, Budget
from search.grid import with_defaults
from search.hooks import Completed, StudyHooks, TrialHooks, Weights
from search.limits import Limits, costs
from search.pareto import cost_of, should_stop
from search.space import SearchSpace, TrialSpec, spec_from_params
from search.train import Diverged, StepMetrics, TrainResult, train


@dataclass(frozen=True)
class TrialSettings:
    epochs: int  # the trial's budget, in passes over the train split
    steps: int | None  # reports over that budget (None: one per epoch, grid mode)
    seed: int  # trial n trains with seed + n
    grid: dict[str, list] | None = None  # grid mode: the params come from the enqueued combo
    space: SearchSpace = field(default_factory=SearchSpace)  # what a trial samples
    precision: str = "fp32"  # the run's (search.precision)
    limits: Limits = field(default_factory=Limits)  # --max-latency, --max-params
    pareto: str | None = None  # --pareto: latency or params, the second objective
    pareto_pruning: bool = True  # its own rule (search.pareto); off with --pruner none


@dataclass
class BestWeights:
    trial_number: int
    value: float
    spec: TrialSpec
    state: dict[str, torch.Tensor]  # on the CPU


class OwnWeights(StudyHooks):
    """The end of the study asks for a trial's weights: this process's best trial's, kept in
    memory by ``objective``."""

    def __init__(self, objective: Objective) -> None:
        self.objective = objective

    def weights(self, trial: optuna.trial.FrozenTrial) -> Weights | None:
        best = self.objective.best
        if best is None or best.trial_number != trial.number:
            return None
        model = build_model(best.spec.model)
        model.load_state_dict(best.state)
        return model, "(best trial's own weights)"


class Objective:
    def __init__(
        self,
        splits: Splits,
        settings: TrialSettings,
        hooks: Sequence[TrialHooks] = (),
        budget: Budget | None = None,
    ) -> None:
        self.splits, self.settings, self.hooks = splits, settings, list(hooks)
        self.budget = budget or Budget(None)
        self.best: BestWeights | None = None  # this process's best trial
        self._moved = {splits.device.type: splits}

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        params = self.params(trial)
        settings = self.settings
        seed = settings.seed + trial.number
        spec = spec_from_params(params, settings.epochs, seed, settings.steps, settings.precision)
        for hook in self.hooks:
            hook.started(trial, params)
        try:
            self.check(trial, params)
            value = self.train(trial, spec, self.splits_for(params))
        except optuna.TrialPruned:
            self._ended(trial, "PRUNED", None)
            raise
        except BaseException as exc:
            if disk.full(exc) is None:  # a full disk records no end: the run stops (search.disk)
                self._ended(trial, "FAIL", None, killed=isinstance(exc, KeyboardInterrupt))
            raise
        self._ended(trial, "COMPLETE", value)
        pareto = self.settings.pareto
        return (value, cost_of(trial, pareto)) if pareto else value

    def params(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sampled from the space, or in grid mode the enqueued combination plus the fixed
        defaults (visible as the ``fixed_params`` user attribute: they are no Optuna params)."""
        grid, space = self.settings.grid, self.settings.space
        if grid is None:
            params, fixed = space.sample(trial)
            if fixed:
                trial.set_user_attr("fixed_params", fixed)
            return params
        combo = {k: trial.suggest_categorical(k, values) for k, values in grid.items()}
        ours = {"model": space.model.ref} if space.model is not None else {}
        params = with_defaults({**ours, **combo})
        trial.set_user_attr("fixed_params", {k: v for k, v in params.items() if k not in combo})
        return params

    def check(self, trial: optuna.Trial, params: dict[str, Any]) -> None:
        """A configuration that cannot run here ends FAIL with the reason (``cannot_run``)."""
        reason = feasible.why_not(params, len(self.splits.train[1]))
        if reason is not None:
            trial.set_user_attr("cannot_run", reason)
            raise feasible.CannotRun(reason)

    def splits_for(self, params: dict[str, Any]) -> Splits:
        """A grid may name ``device`` per run: the data is copied there once."""
        device = params.get("device", self.splits.device.type)
        if device not in self._moved:
            self._moved[device] = self.splits.to(device)
        return self._moved[device]

    def train(self, trial: optuna.Trial, spec: TrialSpec, splits: Splits) -> float:
        torch.manual_seed(spec.train.seed)
        model = built(trial, spec)
        self.measure(trial, model)  # over a limit: PRUNED, untrained
        for key, value in (
            ("n_parameters", count_parameters(model)),
            ("device", splits.device.type),
            ("precision", spec.train.precision),
        ):
            trial.set_user_attr(key, value)
        history: list[dict[str, float]] = []
        reporter = _Reporter(self, trial, history, spec.train.steps or spec.train.epochs)
        if splits.device.type == "cuda":  # each trial's own peak, in its cuda_peak_mb
            torch.cuda.reset_peak_memory_stats(splits.device)
        start = time.perf_counter()
        probe = splits.probe if self.settings.grid is None else None  # a grid reports epochs
        try:
            result = train(model, splits.train, spec.train, splits.val, probe, reporter)
        except Diverged as exc:
            trial.set_user_attr("diverged", str(exc))
            raise optuna.TrialPruned(f"diverged: {exc}") from None
        finally:
            _record_time(trial, history, start, len(splits.train[1]))
        try:
            if result.stopped_early:
                if reporter.over_budget:
                    trial.set_user_attr("stopped", "budget: it could not finish in the time left")
                raise optuna.TrialPruned(f"pruned after step {result.last.step}")
            self._completed(trial, spec, model, result)
            return result.last.val_accuracy
        finally:
            del model
            release_memory(splits.device)
            _record_cuda_memory(trial, splits.device)

    def measure(self, trial: optuna.Trial, model: torch.nn.Module) -> None:
        """With a limit: the configuration's latency and size, recorded; one over a limit is
        not trained (``over_limit``: it ends PRUNED, and TPE learns from its costs)."""
        limits = self.settings.limits
        if not limits.active and self.settings.pareto is None:
            return
        found = costs(model, self.splits.mean, self.splits.std)
        trial.set_user_attr("latency_ms", round(found.latency_ms, 4))
        trial.set_user_attr("n_parameters", found.n_parameters)
        for name, value in limits.constraints(found).items():
            trial.set_constraint(name, value)
        reason = limits.over(found)
        if reason is not None:
            trial.set_user_attr("over_limit", reason)
            raise optuna.TrialPruned(reason)

    def _completed(self, trial, spec: TrialSpec, model, result: TrainResult) -> None:
        value = result.last.val_accuracy
        beats_process = self.best is None or value > self.best.value  # BestWeights' value
        beats_study = _beats_study(trial, value)
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if beats_process:
            self.best = BestWeights(trial.number, value, spec, state)
        done = Completed(trial, value, spec, state, result.val_predictions, beats_study)
        for hook in self.hooks:
            hook.completed(done)

    def _ended(self, trial, state: str, value: float | None, killed: bool = False) -> None:
        for hook in self.hooks:
            hook.ended(trial, state, value, killed)


def built(trial: optuna.Trial, spec: TrialSpec) -> torch.nn.Module:
    """The trial's network. A user's that its keyword values make fail (its constructor
    raises, or its logits are not (N, 10)) cannot run: the trial ends FAIL with the reason
    (``cannot_run``) and the study goes on."""
    if not isinstance(spec.model, UserModelConfig):
        return build_model(spec.model)
    try:
        network = build_model(spec.model)
        check_output(network, spec.model.ref)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        reason = f"the network does not build with these values ({type(exc).__name__}: {first})"
        trial.set_user_attr("cannot_run", reason)
        raise feasible.CannotRun(reason) from None
    return network


class _Reporter:
    """The trainer's per-step callback: report, record, tell the hooks, ask the pruner."""

    def __init__(self, objective: Objective, trial, history: list, steps: int) -> None:
        self.objective, self.trial, self.history, self.steps = objective, trial, history, steps
        self.over_budget = False

    def __call__(self, m: StepMetrics) -> bool:
        pareto = self.objective.settings.pareto
        self.history.append(asdict(m))
        if pareto is None:  # Optuna takes no report in a multi-objective study
            self.trial.report(m.val_accuracy, m.step)
        self.trial.set_user_attr("history", self.history)
        for hook in self.objective.hooks:
            hook.step(self.trial, m)
        steps_left = self.steps - m.step
        self.over_budget = cannot_finish(self.objective.budget, m, steps_left)
        if pareto is None:
            pruned = self.trial.should_prune()
        else:  # judged against the trials near its own cost (search.pareto)
            rule = self.objective.settings.pareto_pruning
            pruned = rule and should_stop(self.trial, m.step, m.val_accuracy, pareto)
        # The last step is the full budget: a finished trial is COMPLETE, not PRUNED.
        return steps_left > 0 and (self.over_budget or pruned)


def cannot_finish(budget: Budget, m: StepMetrics, steps_left: int) -> bool:
    """Whether a trial's steps left, at the pace of step ``m``, would eat into the budget's
    reserve. The first step of a process's first trial carries its warm-up (measured at
    --budget 102s: 7.5 s against 1.4-1.6 s for each of the nine after it, and the warm start
    was stopped as too slow): after it only the next step must fit."""
    priced = min(steps_left, 1) if m.step == 1 else steps_left
    return not budget.allows(m.step_seconds * priced * MARGIN)


def _record_time(trial: optuna.Trial, history: list[dict], start: float, n_train: int) -> None:
    trial.set_user_attr("train_seconds", round(time.perf_counter() - start, 3))
    trial.set_user_attr("train_images", round(history[-1]["epoch"] * n_train) if history else 0)
    trial.set_user_attr("step_seconds", [round(h["step_seconds"], 3) for h in history])


def _record_cuda_memory(trial: optuna.Trial, device: torch.device) -> None:
    """On a GPU: the trial's peak, and what is still allocated once it has released its
    model (the dataset, and anything leaked: it must not grow from trial to trial)."""
    if device.type == "cuda":
        trial.set_user_attr("cuda_peak_mb", round(torch.cuda.max_memory_allocated(device) / 2**20))
        trial.set_user_attr("cuda_after_mb", round(torch.cuda.memory_allocated(device) / 2**20))


def _beats_study(trial: optuna.Trial, value: float) -> bool:
    """Better than every trial completed so far, in any worker (this one is not told yet)."""
    done = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return all(value > t.values[0] for t in done)


def release_memory(device: torch.device) -> None:
    """Long-running workers must not grow with the trial count (optuna#1224, #5931)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
