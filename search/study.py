"""Create or resume the study and run trials until it holds the requested finished trials.

Optuna drives: each trial is ``study.optimize(objective, n_trials=1)``, so heartbeats,
stale-trial failing and retries are Optuna's own. Around it, under the storage's claim lock,
a worker looks at the study and takes only the work that is left:

- search mode: stop when COMPLETE + PRUNED trials reach ``target``; while other workers' running
  trials could still close the gap, wait for them instead of starting surplus trials;
- grid mode: every combination is enqueued once (missing ones only, so a resume adds only
  what is left), and a worker stops when no combination is waiting or unfinished.

A killed worker's trial is failed and its params re-queued once, so the study still reaches
its target: at once when the worker was on this machine (``search.recovery``, any storage),
else when its heartbeats stop (RDB storages, ``RetryHeartbeatStaleTrialCallback``). The study
is opened under the claim lock, so processes started together create it and enqueue the
warm-start trial once.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum

import optuna
from optuna.trial import TrialState

from data import Splits
from search import pareto
from search.budget import END_SECONDS, MARGIN, PLATEAU_EPOCHS, Budget, best_rate, slowest_rate
from search.config import RunConfig, StudyConfig
from search.errors import UserError
from search.feasible import CannotRun
from search.grid import combinations
from search.process import me
from search.recovery import recover, retry_interrupted, sign, waiting_line
from search.samplers import make_pruner, make_sampler
from search.signals import HeldSignals
from search.space import WARM_START_NOTE, SearchSpace
from search.storage import GRACE_FACTOR, Lock

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
OPEN_STRIDE = 100_003  # sampler seeds of successive openings of one study stay far apart
# Trials in a row that could not run before a worker gives up: the space holds runnable
# configurations unless the data is tiny, and 20 random draws all missing them means none are.
CANNOT_RUN_STREAK = 20


class Ended(Enum):
    """Why the trials stopped."""

    DONE = "done"  # --trials finished trials, or every grid combination
    BUDGET = "budget"  # no time left for another trial
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM
    CANNOT_RUN = "cannot run"  # trial after trial could not run on this data
    WORKER_FAILED = "worker failed"  # a --workers child ended badly
    DISK_FULL = "disk full"  # the study, its tables or its pictures could not be written


@dataclass(frozen=True)
class Stop:
    why: Ended
    detail: str = ""  # the reason trials could not run, or the worker's exit status

    @property
    def exit_status(self) -> int:
        if self.why is Ended.INTERRUPTED:
            return 130
        return 1 if self.why in (Ended.CANNOT_RUN, Ended.WORKER_FAILED, Ended.DISK_FULL) else 0


class StudyMismatch(UserError):
    """A study resumed with settings that would change what its steps mean: one line, exit 2."""


def check_resume(storage, name: str, epochs: int, steps: int, space: dict | None = None) -> None:
    """Before anything is written: a study created with other ``--epochs`` or steps (from
    ``--step-images`` and ``--train-size``) is refused, naming its own settings; its pruner
    would compare steps of different sizes. So is one created with another search space or
    other limits (``space``: ``SearchSpace.record()`` and ``Limits.record()``: a space file's
    ranges, a user's network, --max-latency, --max-params): its sampler would mix trials
    from two spaces. A new study, or an older one that did not record them, passes."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return
    had_epochs, had_steps = (study.user_attrs.get(k) for k in ("epochs", "steps"))
    if had_epochs is not None and (had_epochs, had_steps) != (epochs, steps):
        raise StudyMismatch(
            f"--study {name!r} was created with --epochs {had_epochs} in {had_steps} step(s); "
            f"this run asks for --epochs {epochs} in {steps} step(s) (--step-images, "
            "--train-size), and the pruner would compare steps of different sizes: resume with "
            "the study's own settings, or start a new --study"
        )
    had = study.user_attrs.get(SPACE_KEY)
    if space is not None and had is not None and {**BUILT_IN, **had} != {**BUILT_IN, **space}:
        raise StudyMismatch(
            f"--study {name!r} was created with {space_difference(had, space)}: resume with its "
            "own --space, --model, --max-latency, --max-params and --pareto, or start a new "
            "--study"
        )


SPACE_KEY = "search_space"  # the study's user attribute: SearchSpace.record() at its creation
# What a study records of its space (SearchSpace.record(), Limits.record()) when it uses the
# built-in one with no limit; a study that recorded none is resumed with any, and records it.
BUILT_IN = {"model": None, "space": None, "max_latency_ms": None, "max_params": None}
BUILT_IN["pareto"] = None  # --pareto: a second objective


def space_difference(had: dict, asked: dict) -> str:
    """What differs, in a few words: a limit, the second objective, the network, or the first
    parameter whose range does."""
    flags = (("max_latency_ms", "--max-latency"), ("max_params", "--max-params"))
    for key, flag in (*flags, ("pareto", "--pareto")):
        if had.get(key) != asked.get(key):
            mine, theirs = (_flag_words(flag, v) for v in (had.get(key), asked.get(key)))
            return f"{mine}; this run asks for {theirs}"
    if had.get("model") != asked.get("model"):
        return f"--model {had.get('model') or '(our networks)'}; this run asks for " + (
            f"--model {asked.get('model') or '(our networks)'}"
        )
    mine, theirs = had.get("space") or {}, asked.get("space") or {}
    if not mine or not theirs:
        return f"{'a space file' if mine else 'the built-in space'}; this run gives " + (
            "a space file" if theirs else "none (the built-in space)"
        )
    for name in dict.fromkeys([*mine, *theirs]):
        if mine.get(name) != theirs.get(name):
            return (
                f"another range for {name} ({_words(mine.get(name))}); this run gives "
                f"{_words(theirs.get(name))}"
            )
    return "another space"


def _flag_words(flag: str, value) -> str:
    if value is None:
        return f"no {flag}"
    return f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}"


def _words(recorded: dict | None) -> str:
    if recorded is None:
        return "its default range"
    if "value" in recorded:
        return f"the value {recorded['value']!r}"
    d = optuna.distributions.json_to_distribution(recorded["distribution"])
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return f"values {list(d.choices)}"
    return f"{'log-' if d.log else ''}uniform {d.low:g} .. {d.high:g}"


@dataclass
class StudyPlan:
    target: int | None  # finished trials wanted (search) or combinations to run (grid); None:
    # no limit (a --budget ends the study; a grid runs whole)
    grid: dict[str, list] | None = None
    timeout: float | None = None
    poll_seconds: float = 2.0  # how often to look again while other workers finish
    budget: Budget = field(default_factory=lambda: Budget(None))
    trial_images: int = 0  # training images in one whole trial
    final_images: int = 0  # training images in the final fit (0: none, or it fills a share)
    epoch_images: int = 0  # training images in one final-fit epoch (train + validation)
    final_share: float = 0.0  # of --budget kept for the final fit from the start (0: fixed)
    reruns: int = 0  # top trials re-run before the final fit (search.winner)
    start_images: int = 0  # what a started trial trains at least: its first step, if pruned
    end_seconds: float = END_SECONDS  # kept for the end of the run (see search.budget)
    journal: bool = False  # journal storage: no heartbeats (see search.recovery)
    grace_seconds: float = 30.0  # RDB storages: a silent trial is failed after this long


def final_reserve(plan: StudyPlan, study: optuna.Study) -> float:
    """Seconds kept for the final fit and the end of the run. Under --budget: the final
    share of the working time, or more, up to all of it, for ``PLATEAU_EPOCHS`` of the
    incumbent at its trial's rate; else the fixed final fit at the slowest trial's rate
    (unknown before a trial completes)."""
    if plan.final_share and plan.budget.seconds is not None:
        working = max(0.0, plan.budget.seconds - plan.end_seconds)
        plateau = (best_rate(study) or 0.0) * plan.epoch_images * PLATEAU_EPOCHS
        final = max(plan.final_share * working, min(working, plateau))
    else:
        final = (slowest_rate(study) or 0.0) * plan.final_images * MARGIN
    return final + plan.end_seconds


def budget_allows_trial(study: optuna.Study, plan: StudyPlan) -> bool:
    """Keep time for the final fit, the top trials' re-runs and the end of the run; start a
    trial if its first step fits too (the trial's own steps stop it, PRUNED, when it could not
    finish: ``search.objective``). Before any trial has completed nothing is known of their
    cost, and without a complete trial there is no champion at all: the first one may start,
    and finish, in the final fit's share (only the end's reserve is kept for it)."""
    rate = slowest_rate(study)
    if rate is None:
        plan.budget.reserve = plan.end_seconds
        return plan.budget.allows(0.0)
    plan.budget.reserve = final_reserve(plan, study) + rerun_reserve(study, plan.reruns)
    return plan.budget.allows(rate * plan.start_images * MARGIN)


def rerun_reserve(study: optuna.Study, k: int) -> float:
    """Seconds the re-runs of the top ``k`` complete trials will take (each as long as its
    trial did), less those already re-run."""
    done = study.user_attrs.get("reruns", {})
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    top = sorted(complete, key=lambda t: (-t.values[0], t.number))[:k]
    seconds = sum(t.user_attrs.get("train_seconds", 0.0) for t in top if str(t.number) not in done)
    return seconds * MARGIN


def grid_todo(grid: dict[str, list], target: int | None) -> list[dict]:
    """The first ``target`` combinations, in product order (``--trials`` caps the grid; the
    product is never built whole)."""
    return list(itertools.islice(combinations(grid), target))


def _key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def _grid_state(study: optuna.Study, todo: list[dict]) -> tuple[int, list[dict], int]:
    """(combinations finished, combinations neither finished nor queued/running, running)."""
    trials = study.get_trials(deepcopy=False)
    names = todo[0].keys() if todo else ()
    done, busy = set(), set()
    for t in trials:
        # The enqueued combination, whatever the state: a trial just taken is RUNNING before
        # its objective has suggested a single param (the claim lock is already free then), and
        # reading its empty params let another worker queue the same point again (seen in CI).
        fixed = t.system_attrs.get("fixed_params") or t.params
        key = _key({k: fixed.get(k) for k in names})
        if t.state in FINISHED or "cannot_run" in t.user_attrs:  # no retry would help those
            done.add(key)
        elif t.state in (TrialState.RUNNING, TrialState.WAITING):
            busy.add(key)
    missing = [c for c in todo if _key(c) not in done and _key(c) not in busy]
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return sum(_key(c) in done for c in todo), missing, running


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def next_step(study: optuna.Study, plan: StudyPlan) -> str:
    """Under the claim lock: 'run' a trial, 'wait' for running ones, or 'done'."""
    _fail_stale(study)
    recover(study)
    if plan.grid is not None:
        todo = grid_todo(plan.grid, plan.target)
        finished, missing, running = _grid_state(study, todo)
        for combo in missing:
            study.enqueue_trial(combo)
        if finished >= len(todo):
            return "done"
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        return "run" if waiting else "wait"
    trials = study.get_trials(deepcopy=False)
    finished = sum(counts(t) for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    target = math.inf if plan.target is None else plan.target
    if finished >= target:
        return "done"
    return "wait" if finished + running >= target else "run"


def counts(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial counts towards ``--trials``: finished, and trained (a configuration
    over ``--max-latency``/``--max-params`` costs milliseconds, not a trial)."""
    return trial.state in FINISHED and "over_limit" not in trial.user_attrs


def finished_count(study: optuna.Study, plan: StudyPlan) -> int:
    if plan.grid is not None:  # a grid point over a limit is done: recorded, not trained
        return _grid_state(study, grid_todo(plan.grid, plan.target))[0]
    return sum(counts(t) for t in study.get_trials(deepcopy=False))


def claimed(
    objective: Callable[[optuna.Trial], float], lock: Lock, taken: list[int], ending: HeldSignals
):
    """``objective`` that first gives the claim lock back: once Optuna has handed us a trial
    it is ours, and other workers may look at the study while we train. The trial's number
    goes on ``taken``. As it returns (or raises), ``ending`` starts holding Ctrl-C and SIGTERM
    back: Optuna records the trial's end next, and cannot be interrupted there
    (``search.signals``)."""

    def run(trial: optuna.Trial) -> float:
        # Named before the lock goes: a retried trial still carries its dead worker's name,
        # and the next worker to look would take this one for dead.
        sign(trial)
        taken.append(trial.number)
        try:
            lock.release()  # delivers a signal held since the claim: the end below is held too
            return objective(trial)
        finally:
            ending.hold()

    return run


def _optimize_one(study: optuna.Study, objective, lock: Lock, note, grid: bool) -> None:
    """One trial; interrupted, queued again once (a grid re-queues its own points). A worker
    that was frozen or cut off past the heartbeat grace finds its trial failed (and retried)
    by another: every write to it fails, then so does Optuna's own tell ("Cannot tell a FAIL
    trial"). That trial is dropped with one line, never overwritten."""
    taken: list[int] = []
    ending = HeldSignals()
    try:
        try:
            run = claimed(objective, lock, taken, ending)
            study.optimize(run, n_trials=1, catch=(CannotRun,), callbacks=[note])
        finally:
            ending.deliver()  # a signal held while the trial's end was recorded: raised now
    except KeyboardInterrupt:
        if taken and not grid:
            ending.hold()  # a second SIGTERM (the supervisor's watch resends) must not cut it
            try:
                retry_interrupted(study, taken[-1])
            finally:
                ending.drop()  # already stopping: what came meanwhile says nothing new
        raise
    except (
        ValueError,
        optuna.exceptions.UpdateFinishedTrialError,
        optuna.exceptions.StorageInternalError,  # its session ended while it was frozen
    ):
        if not taken or not _failed_by_another(study, taken[-1]):
            raise
        print(
            f"worker {me()}: trial #{taken[-1]} was failed and "
            "retried by another worker while this one was stopped; dropped it, going on",
            file=sys.__stderr__,  # past --quiet's held stderr: it says why a trial is missing
        )


def _failed_by_another(study: optuna.Study, number: int) -> bool:
    """Whether trial ``number`` (this worker's) ended FAIL in the storage without us."""
    trial = study.get_trials(deepcopy=False)[number]
    return trial.state == TrialState.FAIL


def run_trials(
    study, objective, plan: StudyPlan, lock: Lock, after_trial=None, on_wait=None
) -> Stop:
    """Run trials until done, timed out or out of budget, or until trial after trial cannot
    run on this data (the reason in ``detail``). ``on_wait`` is told what this worker waits for
    while others finish."""
    start, reasons = time.monotonic(), []

    def note(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        attrs = trial.user_attrs
        reasons.append(attrs.get("cannot_run") or attrs.get("over_limit"))

    while True:
        if plan.timeout is not None and time.monotonic() - start >= plan.timeout:
            return Stop(Ended.TIMEOUT)
        with lock:
            step = next_step(study, plan)
            if step == "run" and not budget_allows_trial(study, plan):
                return Stop(Ended.BUDGET)
            if step == "run":
                _optimize_one(study, objective, lock, note, plan.grid is not None)
        if step == "done":
            return Stop(Ended.DONE)
        if len(reasons) >= CANNOT_RUN_STREAK and all(reasons[-CANNOT_RUN_STREAK:]):
            return Stop(Ended.CANNOT_RUN, reasons[-1])
        if step == "wait":
            if on_wait is not None:
                on_wait(waiting_line(study, plan.journal, plan.grace_seconds))
            time.sleep(plan.poll_seconds)
        elif after_trial is not None:
            after_trial(study)


METRIC = "val_accuracy"  # what the study's values are: optuna-dashboard names its plots so


def open_study(
    config: StudyConfig,
    storage,
    settings: dict,
    worker: bool = False,
    space: SearchSpace | None = None,
) -> optuna.Study:
    """Create or resume ``config.name``: its value named ``val_accuracy`` (older studies too),
    the pruner over ``settings["steps"]``, a sampler seeded past the trials it already has (a
    resumed study must not replay the first seeded samples, optuna#3255), ``settings`` (mode,
    epochs, steps, what a step is, space, and the command that created it; an older study
    records the first command that resumes it) recorded once, and for a new search-mode study the
    warm-start trial (the incumbent is never worse than the fixed recipe it is)."""
    pruner = "none" if config.pareto else config.pruner  # a Pareto study prunes by itself
    study = optuna.create_study(
        study_name=config.name,
        storage=storage,
        directions=pareto.directions(config.pareto),
        pruner=make_pruner(pruner, settings["steps"], **pruner_options(space)),
        load_if_exists=True,
    )
    name_values(study, config.pareto)
    trials = study.get_trials(deepcopy=False)
    # Every process that opens the study counts itself in: processes started together see the
    # same trials, and without their own offset they would sample the same params.
    opened = study.user_attrs.get("opened", 0)
    study.set_user_attr("opened", opened + 1)
    seed = (config.seed + len(trials) + OPEN_STRIDE * opened) % 2**32  # numpy's seed range
    study.sampler = make_sampler(config.sampler, seed)
    for key, value in settings.items():  # a resume on another device keeps its space
        if key not in study.user_attrs:
            study.set_user_attr(key, value)
    if not trials and not config.grid and config.warm_start and not worker:
        space = replace(space or SearchSpace(), device=study.user_attrs["space"])
        warm = space.warm_start()  # none when it lies outside a space file's ranges
        if warm is not None:
            study.enqueue_trial(warm, user_attrs={"warm_start": WARM_START_NOTE})
    return study


def name_values(study: optuna.Study, second: str | None) -> None:
    """The study's values named (``val_accuracy``, and a Pareto study's cost): optuna-dashboard
    names its plots and axes so; an older study gets them too."""
    if study.metric_names is None:
        with warnings.catch_warnings():  # experimental since Optuna 3.2, still in 5.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(pareto.metric_names(second))


def pruner_options(space: SearchSpace | None) -> dict:
    """A space file's early_terminate settings (hyperband's min_resource, reduction_factor)."""
    if space is None or space.sweep is None:
        return {}
    return dict(space.sweep.header.pruner_options)


def study_settings(config: StudyConfig, epochs: int, steps: int, images: int, space: str) -> dict:
    """What a study records about itself when it is created: its mode, its trials' length, what
    one of its steps is (the dashboard's intermediate values are per step), its space."""
    step_images = round(epochs * images / steps)
    unit = "training epoch" if config.grid else f"{step_images:,} training images"
    return {
        "mode": "grid" if config.grid else "search",
        "epochs": epochs,
        "steps": steps,
        "step_images": step_images,
        "step": f"one step = {unit}; intermediate values are {METRIC} after each step",
        "space": space,
    }


def trial_steps(config: RunConfig, train_images: int) -> int:
    """Reports per trial: one per --step-images training images (grid mode: one per epoch,
    RunManager's rows)."""
    epochs = config.training.epochs
    if config.grid_mode:
        return epochs
    return max(1, round(epochs * train_images / config.training.step_images))


def plan_for(
    config: RunConfig,
    splits: Splits,
    grid: dict | None,
    budget: Budget,
    end_seconds: float,
    journal: bool,
) -> StudyPlan:
    """What this worker is to do, in the study's terms: the target, the time it has and what
    trials, re-runs and the final fit cost in images (``journal``: a journal storage)."""
    training, train_images = config.training, len(splits.train[1])
    labelled = train_images + len(splits.val[1])  # what a final-fit epoch trains on
    final = training.final_epochs  # None: the final fit fills its share of --budget
    return StudyPlan(
        target=config.study.trials,
        grid=grid,
        timeout=config.study.timeout,
        budget=budget,
        trial_images=training.epochs * train_images,
        final_images=(final or 0) * labelled,
        epoch_images=labelled,
        final_share=training.final_share if final is None else 0.0,
        reruns=training.reruns,
        start_images=(
            training.epochs * train_images
            if config.study.pruner == "none" or config.grid_mode
            else training.step_images
        ),
        poll_seconds=config.workers.poll_seconds,
        end_seconds=end_seconds,
        journal=journal,
        grace_seconds=config.workers.heartbeat * GRACE_FACTOR,
    )
