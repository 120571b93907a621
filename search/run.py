"""python -m search.run: tune a Fashion-MNIST classifier with Optuna, track it in MLflow.

    python -m search.run --trials 50                       # TPE + pruning, sqlite:///optuna.db
    python -m search.run --trials 50 --budget 10m          # and end within 10 minutes
    python -m search.run --sampler grid --grid sweep.json  # RunBuilder sweep, each combo once
    optuna-dashboard sqlite:///optuna.db                   # look at the study

A new study's first trial is the seed article's hand-tuned CNN (--no-warm-start skips it).
Each trial trains for --epochs and reports validation accuracy every --step-images training
images, so successive halving stops bad trials after seconds. When the trials are done, the
best configuration is trained again for --final-epochs on train + validation: that model is
the champion, evaluated once on the held-out test set and registered in MLflow.

Re-running with the same --study and --storage resumes: trials are added until the study
holds --trials finished (COMPLETE or PRUNED) trials. Exit status: 0 done, 2 bad input,
1 a worker failed or trial after trial could not run on this data, 130 interrupted (Ctrl-C or
SIGTERM; the running trial is marked and the summary printed).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import optuna
import torch

from data import DataError, Splits, load_splits
from models import standalone
from search import champion, winner
from search.artifacts import TrialPictures, close, open_store, pictures, upload
from search.budget import (
    END_SECONDS,
    END_SECONDS_UNTRACKED,
    Budget,
    process_start,
    slowest_rate,
)
from search.cli import UsageError, parse_args
from search.config import STORAGE_ENV, RunConfig, params
from search.device import DeviceError, describe, resolve_device
from search.feasible import check_grid
from search.grid import GridError, grid_size, load_grid
from search.names import file_stem
from search.objective import Objective, TrialHooks, TrialSettings
from search.progress import Progress
from search.quiet import held_stderr, quiet_libraries
from search.report import Summary, grid_rows, save_table, state_counts, trials_table
from search.space import space_name
from search.storage import (
    GRACE_FACTOR,
    StorageError,
    check_storage,
    claim_lock,
    is_journal,
    open_storage,
    results_dir,
)
from search.study import (
    CANNOT_RUN_STREAK,
    StudyMismatch,
    StudyPlan,
    check_resume,
    final_reserve,
    finished_count,
    open_study,
    run_trials,
    study_settings,
)
from search.train import evaluate_and_predict
from search.urls import TrackingError, check_tracking_uri, mask_url, scrub
from search.workers import die_with_supervisor, supervise, worker_config, workers_that_fit

USER_ERRORS = (
    UsageError,
    GridError,
    DeviceError,
    DataError,
    StorageError,
    TrackingError,
    StudyMismatch,
)
ARTIFACTS = "optuna-artifacts"  # optuna-dashboard STORAGE --artifact-dir optuna-artifacts


@dataclass
class Inputs:
    """What the run works on, all checked before anything was written."""

    grid: dict[str, list] | None
    device: torch.device
    splits: Splits


@dataclass
class Outcome:
    """What the end of the run found: the tables, the best trial, the champion."""

    files: list[Path] = field(default_factory=list)
    best: optuna.trial.FrozenTrial | None = None
    test_accuracy: float | None = None
    note: str = ""
    registered: str = ""
    choice: winner.Choice | None = None


def main(argv: list[str] | None = None) -> int:
    started = process_start()  # --budget counts from the start of the process
    quiet_libraries()
    try:
        config = parse_args(argv, __doc__)
        inputs = prepare(config)
        storage = open_storage(config.study.storage, heartbeat_interval=config.workers.heartbeat)
        steps = trial_steps(config, inputs.splits)
        check_resume(storage, config.study.name, config.training.epochs, steps)
        tracking = open_run_tracking(config, inputs.device)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    quiet_libraries(config.output.quiet)
    if config.workers.worker:
        die_with_supervisor()
    torch.set_num_threads(config.workers.threads)
    lock = claim_lock(storage, config.study.storage, config.study.name)
    with lock:  # processes started together: one creates the study and enqueues the warm start
        space = space_name(inputs.device.type)
        images = len(inputs.splits.train[1])
        settings = study_settings(config.study, config.training.epochs, steps, images, space)
        study = open_study(config.study, storage, settings, config.workers.worker)
    plan = make_plan(config, inputs, make_budget(config, started))
    store = open_store(artifact_dir(config))
    hooks = trial_hooks(inputs, tracking, store)
    if config.workers.worker:
        return work(
            study, make_objective(config, inputs, steps, plan, hooks, study), plan, lock, tracking
        )
    total = min(plan.target or math.inf, grid_size(inputs.grid)) if inputs.grid else plan.target
    progress = Progress(total, finished_count(study, plan), steps, config.output.quiet)
    objective = make_objective(config, inputs, steps, plan, [*hooks, progress], study)
    announce(config, inputs.device)
    start = time.perf_counter()
    left = config.workers.workers if total is None else total - finished_count(study, plan)
    workers = workers_to_start(config, left, inputs.splits)
    with held_stderr() if config.output.quiet else contextlib.nullcontext():
        stopped = run_study(
            study, objective, plan, lock, config, workers, inputs.device, tracking, progress
        )
    if stopped == "done" and total is not None and finished_count(study, plan) < total:
        # Workers stop on their own timeout or budget; they exit 0 all the same.
        stopped = (
            "budget" if config.study.budget else "timeout" if config.study.timeout else stopped
        )
    with held_stderr():  # MLflow narrates registering; the summary says it in one line
        outcome = finish(study, objective, inputs, config, tracking, store, lock, plan, progress)
    progress.close()
    if tracking is not None:
        tracking.runs.end_orphans(study)
        tracking.runs.end_parent("KILLED" if stopped == "interrupted" else "FINISHED")
    print(
        "\n".join(
            summary(config, study, outcome, stopped, tracking, time.perf_counter() - start).lines()
        )
    )
    if stopped == "interrupted":
        return 130
    return 1 if stopped.startswith(("worker failed", "cannot run")) else 0


# --- before anything is written ---------------------------------------------------------------


def prepare(config: RunConfig) -> Inputs:
    """Everything that can fail on bad input, before anything is written (the flags' own
    checks ran in the parser): the grid, the device, the tracking URI and the storage (checked,
    not created), then the data (read only)."""
    grid = load_grid(config.study.grid) if config.study.grid else None
    device = resolve_device(config.data.device)
    if config.tracking.enabled:
        check_tracking_uri(config.tracking.uri or mlflow_default_uri())
    check_storage(config.study.storage)
    data = config.data
    splits = load_splits(
        data.data_dir,
        device=device,
        train_size=data.train_size,
        seed=config.study.seed,
        val_size=data.val_size,
        test_size=data.test_size,
    )
    if grid is not None:  # a value that can never run here (device, batch vs. data) is refused
        check_grid(grid, len(splits.train[1]), config.study.grid)
    return Inputs(grid, device, splits)


def mlflow_default_uri() -> str:
    import mlflow  # only when tracking: it takes a second to import

    return mlflow.get_tracking_uri()


def open_run_tracking(config: RunConfig, device: torch.device):
    """MLflow for this run (``None`` with ``--no-mlflow``): its own parent run, or with
    ``--worker`` the supervisor's."""
    if not config.tracking.enabled:
        return None
    from search.tracking import open_tracking  # MLflow: imported only when tracking

    parent = config.workers.parent_run_id
    try:
        tracking = open_tracking(config.tracking, parent)
    except Exception as exc:  # MLflow raises many types; one line for the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        uri = config.tracking.uri
        raise TrackingError(
            f"--tracking-uri {mask_url(uri or 'default')}: {scrub(first, uri)}"
        ) from None
    if parent is None:
        study = config.study
        tags = {
            "storage": mask_url(study.storage),
            "sampler": study.sampler,
            "pruner": study.pruner,
            "seed": str(study.seed),
            "torch_version": torch.__version__,
            "device": describe(device),
        }
        settings = {**params(config), "tracking_uri": mask_url(tracking.uri)}
        tracking.runs.start_parent(study.name, tags, settings)
    return tracking


# --- the trials -------------------------------------------------------------------------------


def trial_steps(config: RunConfig, splits: Splits) -> int:
    """Reports per trial: one per --step-images training images (grid mode: one per epoch,
    RunManager's rows)."""
    epochs = config.training.epochs
    if config.grid_mode:
        return epochs
    return max(1, round(epochs * len(splits.train[1]) / config.training.step_images))


def make_budget(config: RunConfig, started: float) -> Budget:
    if config.workers.deadline is not None:  # a --workers child: the supervisor's deadline
        return Budget(config.workers.deadline - time.time())
    return Budget(config.study.budget, start=started)


def end_seconds(config: RunConfig) -> float:
    return END_SECONDS if config.tracking.enabled else END_SECONDS_UNTRACKED


def make_plan(config: RunConfig, inputs: Inputs, budget: Budget) -> StudyPlan:
    train_images = len(inputs.splits.train[1])
    final = config.training.final_epochs  # None: the final fit fills its share of --budget
    return StudyPlan(
        target=config.study.trials,
        grid=inputs.grid,
        timeout=config.study.timeout,
        budget=budget,
        trial_images=config.training.epochs * train_images,
        final_images=(final or 0) * (train_images + len(inputs.splits.val[1])),
        final_share=config.training.final_share if final is None else 0.0,
        rerun_images=config.training.reruns * config.training.epochs * train_images,
        poll_seconds=config.workers.poll_seconds,
        end_seconds=end_seconds(config),
        journal=is_journal(config.study.storage),
        grace_seconds=config.workers.heartbeat * GRACE_FACTOR,
    )


def artifact_dir(config: RunConfig) -> Path:
    """Optuna artifacts live beside a file-based study (else in the working directory)."""
    if config.output.artifact_dir:
        return Path(config.output.artifact_dir)
    return results_dir(config.study.storage) / ARTIFACTS


def trial_hooks(inputs: Inputs, tracking, store) -> list[TrialHooks]:
    """Around every trial: its MLflow run and checkpoint, and the pictures of a new best."""
    hooks: list[TrialHooks] = [TrialPictures(store, inputs.splits)]
    if tracking is not None:
        from search.tracking import TrialTracking

        hooks.insert(0, TrialTracking(tracking))
    return hooks


def make_objective(
    config: RunConfig, inputs: Inputs, steps: int, plan: StudyPlan, hooks, study: optuna.Study
):
    settings = TrialSettings(
        epochs=config.training.epochs,
        steps=None if config.grid_mode else steps,
        seed=config.study.seed,
        grid=inputs.grid,
        space=study.user_attrs.get("space", "cpu"),
    )
    return Objective(inputs.splits, settings, hooks, plan.budget)


def workers_to_start(config: RunConfig, left: int, splits: Splits) -> int:
    """``--workers K``, as many as fit (trials left, cores, memory); when that is fewer, one
    line says why, even with --quiet."""
    if config.workers.workers == 1:
        return 1
    count, line = workers_that_fit(config.workers.workers, left, splits.nbytes)
    if line:
        print(line, file=sys.stderr)
    return count


def announce(config: RunConfig, device: torch.device) -> None:
    if not config.output.quiet:
        study, workers = config.study, config.workers
        print(
            f"study {study.name!r} on {mask_url(study.storage)}: {study.sampler} sampler, "
            f"{study.pruner} pruner, {describe(device)}, torch {torch.__version__}, "
            f"{workers.workers} worker(s) x {workers.threads} thread(s)"
        )


def run_study(
    study, objective, plan, lock, config: RunConfig, workers: int, device, tracking, progress
) -> str:
    """The trials, here or in ``workers`` processes (``--workers``, as many as fit); returns
    why they stopped."""

    def after_trial(study: optuna.Study) -> None:
        progress.after_trial(study, finished_count(study, plan))
        if tracking is not None:
            tracking.runs.end_orphans(study)

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if config.workers.workers > 1:
            parent = tracking.runs.parent_id if tracking else None
            deadline = time.time() + plan.budget.left() if config.study.budget else None
            urls = {STORAGE_ENV: config.study.storage}
            if tracking is not None:
                urls["MLFLOW_TRACKING_URI"] = tracking.uri
            children = worker_config(config, parent, deadline)
            return supervise(children, workers, device, urls, partial(after_trial, study))
        return run_trials(study, objective, plan, lock, after_trial, progress.waiting)
    except KeyboardInterrupt:
        return "interrupted"
    finally:
        signal.signal(signal.SIGTERM, previous)


def work(study, objective: Objective, plan: StudyPlan, lock, tracking) -> int:
    """A ``--workers`` child: run trials, leave the end of the study to the supervisor."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    orphans = tracking.runs.end_orphans if tracking is not None else None
    try:
        with held_stderr():  # a worker is quiet; its chatter shows only if it fails
            run_trials(study, objective, plan, lock, orphans)
    except KeyboardInterrupt:
        print(
            f"worker {os.getpid()}: stopped by signal; its running trial is marked FAIL",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


# --- the end of the run -----------------------------------------------------------------------


def finish(
    study, objective, inputs: Inputs, config: RunConfig, tracking, store, lock, plan, progress
) -> Outcome:
    """Tables, then (if a trial completed) the winner, the champion, its test accuracy, its
    pictures in Optuna and MLflow, and its registration."""
    outcome = Outcome(files=tables(study, inputs.grid, config))
    choice = choose_winner(study, inputs.splits, config, tracking, plan, progress)
    if choice is None:
        if tracking is not None:
            tracking.runs.log_results({}, files=outcome.files)
        return outcome
    outcome.choice = choice
    best = outcome.best = next(
        t for t in study.get_trials(deepcopy=False) if t.number == choice.winner.number
    )
    splits = inputs.splits
    chosen = choose_champion(study, best, objective, splits, config, tracking, plan, progress)
    _, outcome.test_accuracy, predicted = evaluate_and_predict(chosen.model, *splits.test)
    outcome.note = chosen.note
    study.set_user_attr("test_accuracy", {"trial": best.number, "value": outcome.test_accuracy})
    figures, matrix = pictures(predicted, splits.test, splits.mean, splits.std, "test")
    upload(store, study, figures)  # the champion's, on the study's page in optuna-dashboard
    if tracking is not None:
        log_results(tracking, study, outcome, figures, matrix)
    close(figures)
    if tracking is None:
        return outcome
    tracking.runs.end_final(outcome.test_accuracy)
    shipped = standalone(chosen.model, splits.mean, splits.std)
    example = (splits.test[0][:4].cpu() * splits.std + splits.mean).numpy()
    with lock:  # several workers may end the study together: one registers
        outcome.registered = tracking.registry.register(
            study,
            best,
            shipped,
            outcome.test_accuracy,
            example,
            tracking.runs.parent_id,
            tracking.runs.final_id,
        )
    return outcome


def choose_winner(study, splits, config: RunConfig, tracking, plan, progress):
    """The top trials re-run on another seed (what the budget allows, keeping the final fit's
    time), the best mean chosen (``search.winner``); ``None`` before any trial completed."""
    plan.budget.reserve = final_reserve(plan, slowest_rate(study))

    def on_rerun(trial, seed, value, seconds) -> None:
        progress.rerun(trial.number, value)
        if tracking is not None:
            tracking.runs.log_rerun(trial.number, champion.full_params(trial), seed, value)

    def final_epochs(trial) -> int:  # what its final fit would get of what is left now
        left = Budget(plan.budget.left())
        return champion.epochs_that_fit(trial, splits, None, left, end_seconds(config))

    budgeted = config.training.final_epochs is None and plan.budget.seconds is not None
    how = winner.Reruns(
        spec_of=lambda t: champion.trial_spec(t, config.training.epochs, config.study.seed),
        splits=splits,
        seed=config.study.seed,
        budget=plan.budget,
        on_start=lambda t: progress.rerunning(t.number),
        on_rerun=on_rerun,
        final_epochs=final_epochs if budgeted else None,
    )
    return winner.choose(study, config.training.reruns, how)


def tables(study: optuna.Study, grid, config: RunConfig) -> list[Path]:
    """The trials table, and in grid mode RunManager's (also printed), beside the study."""
    out = results_dir(config.study.storage)
    stem = file_stem(config.study.name)  # a study name may hold anything; files may not
    files = save_table(trials_table(study), out / f"{stem}-trials")
    if grid:
        table = grid_rows(study, grid)
        files += save_table(table, out / f"{stem}-runs")
        if not config.output.quiet and not table.empty:
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return files


def choose_champion(
    study, best, objective, splits, config: RunConfig, tracking, plan, progress
) -> champion.Champion:
    """The registered champion if it already is the winner, else the winner's final fit (what
    the budget leaves of it), else the winning trial's own weights."""
    registered = tracking.registry.is_champion(study.study_name, best.number) if tracking else None
    if registered is not None:
        model = champion.network_of(tracking.registry.load(registered)).to(splits.device)
        note = (
            f"(registered champion version {registered.version}, fitted by an earlier run: "
            "no new final fit)"
        )
        return champion.Champion(model, note)
    wanted = config.training.final_epochs
    plan.budget.reserve = 0.0
    epochs = champion.epochs_that_fit(best, splits, wanted, plan.budget, end_seconds(config))
    if not epochs:
        spec = champion.trial_spec(best, config.training.epochs, config.study.seed)
        checkpoint = (
            (lambda: tracking.checkpoints.load(best.user_attrs.get("mlflow_run_id", "")))
            if tracking
            else (lambda: None)
        )
        chosen = champion.trial_weights(best, spec, splits, objective.best, checkpoint)
        if wanted:
            chosen.note += f" (no time left for --final-epochs {wanted})"
        elif wanted is None:
            chosen.note += " (no time left for a final fit)"
        return chosen
    spec = champion.final_spec(best, epochs, config.study.seed)
    if tracking is not None:
        images = len(splits.train[1]) + len(splits.val[1])
        params = {**champion.full_params(best), **champion.regularizers(spec)}
        tracking.runs.start_final(best.number, {**params, "train_images": images}, epochs)

    def on_epoch(m) -> None:
        progress.final_epoch(m, epochs)
        if tracking is not None:
            tracking.runs.log_final_epoch(m)

    return champion.fitted(spec, splits, wanted, best.number, on_epoch)


def log_results(tracking, study, outcome: Outcome, figures, matrix) -> None:
    """The parent run's results: tables, pictures, per-class accuracy, Optuna's plots."""
    from search.figures import optuna_html, per_class  # plotly: only when tracking

    page, _ = optuna_html(study)
    metrics = {"test_accuracy": outcome.test_accuracy, "best_val_accuracy": outcome.best.value}
    if outcome.choice is not None:
        metrics["winner_val_mean"] = outcome.choice.winner.mean
    tracking.runs.log_results(
        metrics,
        files=outcome.files,
        figures=figures,
        dicts={"per_class_accuracy.json": per_class(matrix)},
        texts={"optuna_plots.html": page},
    )


def summary(
    config: RunConfig, study, outcome: Outcome, stopped: str, tracking, seconds: float
) -> Summary:
    best = outcome.best
    return Summary(
        study_name=config.study.name,
        storage=mask_url(config.study.storage),
        counts=state_counts(study),
        ended=ended_by(stopped, config),
        wall_seconds=seconds,
        best_trial=study.best_trial.number if best else None,
        best_value=study.best_value if best else None,
        best_params=champion.full_params(best) if best else {},
        test_accuracy=outcome.test_accuracy,
        test_images=config.data.test_size,
        model_note=outcome.note,
        winner=outcome.choice.line() if outcome.choice else "",
        tracking=tracking_line(config, tracking, outcome.registered),
        files=outcome.files,
    )


def ended_by(stopped: str, config: RunConfig) -> str:
    """What ended the study, in the words of the flag that did it."""
    if stopped == "done":
        return "grid done" if config.grid_mode else f"ended by --trials {config.study.trials}"
    if stopped == "budget":
        return f"ended by --budget {config.study.budget:g} s: no time for another trial"
    if stopped == "timeout":
        return f"ended by --timeout {config.study.timeout:g} s"
    if stopped.startswith("cannot run"):
        return f"stopped: {CANNOT_RUN_STREAK} trials in a row could not run ({stopped[12:]})"
    return stopped


def tracking_line(config: RunConfig, tracking, registered: str) -> str:
    if tracking is None:
        return "MLflow: off (--no-mlflow): nothing was tracked"
    uri = mask_url(tracking.uri)
    ui = (
        f"open it: mlflow ui --backend-store-uri {uri} --host 127.0.0.1"
        if not uri.startswith("http")
        else f"open it: {uri}"
    )
    return f"MLflow: experiment {config.tracking.experiment!r} at {uri}    {ui}\n{registered}"


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    raise SystemExit(main())
