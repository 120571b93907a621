"""python -m search.run: tune a Fashion-MNIST classifier with Optuna, track it in MLflow.

    python -m search.run --trials 50                       # TPE + pruning, sqlite:///optuna.db
    python -m search.run --budget 10m                      # the best model in 10 minutes
    python -m search.run --sampler grid --grid sweep.json  # RunBuilder sweep, each combo once
    optuna-dashboard sqlite:///optuna.db                   # look at the study

A new study's first trial is the seed article's CNN on the strongest fixed recipe known for it
(--no-warm-start skips it). Each trial trains for --epochs and reports validation accuracy
every --step-images training images, so successive halving stops bad trials after seconds.
When the trials are done, the top --reruns trials are trained again on another seed and the
best mean wins; the winner is trained again for --final-epochs on train + validation (under
--budget, for as many epochs as fit): that model is the champion, evaluated once on the
held-out test set and registered in MLflow.

Re-running with the same --study and --storage resumes: trials are added until the study
holds --trials finished (COMPLETE or PRUNED) trials. Exit status: 0 done, 2 bad input,
1 a worker failed, trial after trial could not run on this data, or MLflow failed mid-run (the
study went on; re-running the command logs what MLflow missed), 130 interrupted (Ctrl-C or
SIGTERM; the running trial is marked and the summary printed).
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import torch

from data import DataError, load_splits
from models import standalone
from search import champion, ending, winner
from search.artifacts import TrialPictures, close, open_store, pictures, upload
from search.budget import Budget, process_start
from search.cli import parse_args
from search.config import RunConfig
from search.device import describe, resolve_device
from search.errors import UserError
from search.feasible import check_grid
from search.grid import grid_size, load_grid
from search.objective import Objective, TrialHooks, TrialSettings
from search.pipeline import Inputs, Run
from search.progress import Progress
from search.quiet import held_stderr, quiet_libraries
from search.reconnect import StorageLost, lost_in
from search.report import Summary, save_tables, summary_of
from search.space import space_name
from search.storage import claim_lock, open_storage
from search.storage_url import StorageURL
from search.study import (
    Ended,
    Stop,
    check_resume,
    finished_count,
    open_study,
    plan_for,
    run_trials,
    study_settings,
    trial_steps,
)
from search.train import evaluate_and_predict
from search.urls import check_tracking_uri, mask_url
from search.viewers import mlflow_ui_command
from search.workers import (
    child_config,
    die_with_supervisor,
    supervise,
    worker_config,
    workers_that_fit,
)

TRIALS_ONLY = "the end of the study (re-runs, final fit, champion) is left to a later run"
# A --workers child's exit (interpreter teardown, its MLflow run ended) and the supervisor's next
# look at it come after the child's last trial, before the supervisor's own end: kept from the
# children's deadline (with none kept, a loaded CI run ended 0.4 s past a 60 s budget).
WORKER_EXIT_SECONDS = 5.0
ARTIFACTS = "optuna-artifacts"  # optuna-dashboard STORAGE --artifact-dir optuna-artifacts


@dataclass
class Outcome:
    """What the end of the run found: the tables, the winner, the champion."""

    files: list[Path] = field(default_factory=list)
    choice: winner.Choice | None = None
    best: object = None  # the winning trial (an Optuna FrozenTrial)
    test_accuracy: float | None = None
    note: str = ""  # how the champion was obtained
    registered: str = ""  # the registry's line for the summary
    stage: str = "the tables"  # where the end of the run is (an interrupt names it)
    elsewhere: str = ""  # another process holds the end of the study: who


def main(argv: list[str] | None = None) -> int:
    started = process_start()  # --budget counts from the start of the process
    quiet_libraries()
    try:
        run = prepare(argv, started)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except (UserError, DataError) as exc:  # bad input: one line, nothing written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        open_run(run)
        return work(run) if run.config.workers.worker else lead(run)
    except Exception as exc:  # the storage server gone past --reconnect-wait: one line, exit 1
        if (lost := lost_in(exc)) is None:
            raise
        return storage_lost(run, lost)


def lead(run: Run) -> int:
    """Search, finish, report: the run of a person's command (not a --workers child)."""
    start, outcome = time.perf_counter(), Outcome()
    # SIGTERM is Ctrl-C from here to the summary: a signal at any moment ends every MLflow run
    # this process opened (KILLED) and prints what finished; the same command finishes the job.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        stop = search(run)
        if run.config.workers.trials_only:
            outcome.best, outcome.elsewhere = best_or_none(run.study), TRIALS_ONLY
        elif stop.why is not Ended.INTERRUPTED:
            stop = finish_or_interrupted(run, outcome, stop)
        close_run(run, stop, outcome)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("\n".join(summary(run, outcome, stop, time.perf_counter() - start).lines()))
    return exit_status(run, stop)


def storage_lost(run: Run, exc: StorageLost) -> int:
    """The storage server stayed away: this process's MLflow runs end (its trial's run FAILED
    by the objective, the rest KILLED), its trial is left to the study's next worker."""
    if run.progress is not None:
        run.progress.close()
    if run.tracking is not None:
        run.tracking.runs.end_final_killed()
        run.tracking.runs.end_parent("KILLED")
    print(f"error: {exc}", file=sys.stderr)
    return 1


def finish_or_interrupted(run: Run, outcome: Outcome, stop: Stop) -> Stop:
    """``finish``, and why the trials stopped; interrupted, the stage it was at."""
    try:
        with held_stderr():  # MLflow narrates registering; the summary says it in one line
            finish(run, outcome)
    except KeyboardInterrupt:
        return Stop(Ended.INTERRUPTED, f"during {outcome.stage}")
    return stop


def exit_status(run: Run, stop: Stop) -> int:
    """The study's own status; 1 if it ended well but MLflow missed part of it."""
    lost = run.tracking is not None and run.tracking.health.lost
    return 1 if lost and stop.exit_status == 0 else stop.exit_status


# --- 1. prepare: every input checked before anything is written -------------------------------


def prepare(argv: list[str] | None, started: float) -> Run:
    """The flags, the grid, the device, the tracking URI and the storage (checked, not
    created), the data (read only), a resumed study's settings; then the storage opened and
    MLflow's parent run started."""
    config = child_config() or parse_args(argv, __doc__)
    inputs = check_inputs(config)
    inputs.command = command_line(sys.argv[1:] if argv is None else argv)
    wait = config.study.reconnect_wait
    storage = open_storage(inputs.storage_url, config.workers.heartbeat, wait)
    steps = trial_steps(config, len(inputs.splits.train[1]))
    check_resume(storage, config.study.name, config.training.epochs, steps)
    tracking = open_tracking(config, inputs.device)
    return Run(config, inputs, storage, steps, tracking, run_budget(config, started))


def check_inputs(config: RunConfig) -> Inputs:
    grid = load_grid(config.study.grid) if config.study.grid else None
    device = resolve_device(config.data.device)
    if config.tracking.enabled:
        check_tracking_uri(config.tracking.uri or mlflow_default_uri())
    storage_url = StorageURL.parse(config.study.storage)
    storage_url.check()
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
    return Inputs(grid, device, splits, storage_url)


def command_line(argv: list[str]) -> str:
    """The command as a person would retype it, every URL's password masked
    (``--storage=URL`` too)."""
    masked = [
        f"{a.partition('=')[0]}={mask_url(a.partition('=')[2])}"
        if a.startswith("--") and "=" in a
        else mask_url(a)
        for a in argv
    ]
    return shlex.join(["python", "-m", "search.run", *masked])


def mlflow_default_uri() -> str:
    import mlflow  # only when tracking: it takes a second to import

    return mlflow.get_tracking_uri()


def open_tracking(config: RunConfig, device: torch.device):
    """MLflow for this run (``None`` with ``--no-mlflow``; MLflow is not even imported)."""
    if not config.tracking.enabled:
        return None
    from search.tracking import open_for_run

    return open_for_run(config, describe(device))


def run_budget(config: RunConfig, started: float) -> Budget:
    if config.workers.deadline is not None:  # a --workers child: the supervisor's deadline
        return Budget(config.workers.deadline - time.time())
    return Budget(config.study.budget, start=started)


def open_run(run: Run) -> None:
    """The study (opened under the claim lock: processes started together create it and
    enqueue the warm start once), its plan, the pictures' store, the progress bar (not in a
    ``--workers`` child) and the objective with its hooks."""
    config = run.config
    quiet_libraries(config.output.quiet)
    if config.workers.worker:
        die_with_supervisor()
    torch.set_num_threads(config.workers.threads)
    run.lock = claim_lock(run.storage, run.inputs.storage_url, config.study.name)
    space, images = space_name(run.inputs.device.type), len(run.splits.train[1])
    settings = study_settings(config.study, config.training.epochs, run.steps, images, space)
    settings["command"] = run.inputs.command
    with run.lock:
        run.study = open_study(config.study, run.storage, settings, config.workers.worker)
        if run.tracking is not None:
            from search.tracking import join_parent

            join_parent(run.tracking, run.study)
    if run.tracking is not None and not config.workers.worker:
        catch_up(run)
    url = run.inputs.storage_url
    run.plan = plan_for(
        config, run.splits, run.inputs.grid, run.budget, run.end_seconds, url.journal
    )
    run.store = open_store(artifact_dir(config, url))
    hooks = trial_hooks(run)
    if not config.workers.worker:
        done = finished_count(run.study, run.plan)
        run.progress = Progress(total_trials(run), done, run.steps, config.output.quiet)
        hooks.append(run.progress)
        if hasattr(run.storage, "reconnect"):  # a database server: its blinks on the bar
            run.storage.reconnect.notify = run.progress.storage_wait
    run.objective = objective(run, hooks)


def catch_up(run: Run) -> None:
    """The study's finished trials that MLflow missed (its server was down, or an earlier run
    had --no-mlflow), logged now from the study's record, said in one line."""
    logged = run.tracking.runs.backfill(run.study)
    if logged and not run.config.output.quiet:
        numbers = ", ".join(f"#{n}" for n in logged[:10]) + (", ..." if len(logged) > 10 else "")
        print(f"MLflow: logged {len(logged)} trial(s) it had missed ({numbers})")


def artifact_dir(config: RunConfig, url: StorageURL) -> Path:
    """Optuna artifacts live beside a file-based study (else in the working directory)."""
    if config.output.artifact_dir:
        return Path(config.output.artifact_dir)
    return url.results_dir() / ARTIFACTS


def trial_hooks(run: Run) -> list[TrialHooks]:
    """Around every trial: its MLflow run and checkpoint, and the pictures of a new best."""
    hooks: list[TrialHooks] = [TrialPictures(run.store, run.splits)]
    if run.tracking is not None:
        from search.tracking import TrialTracking

        hooks.insert(0, TrialTracking(run.tracking))
    return hooks


def objective(run: Run, hooks: list[TrialHooks]) -> Objective:
    config = run.config
    settings = TrialSettings(
        epochs=config.training.epochs,
        steps=None if config.grid_mode else run.steps,
        seed=config.study.seed,
        grid=run.inputs.grid,
        space=run.study.user_attrs.get("space", "cpu"),
    )
    return Objective(run.splits, settings, hooks, run.budget)


def total_trials(run: Run) -> int | None:
    """Finished trials this run works towards (``None``: no limit, the budget ends it)."""
    grid, target = run.inputs.grid, run.plan.target
    return min(target or math.inf, grid_size(grid)) if grid else target


# --- 2. search: the trials, here or in --workers processes -----------------------------------


def search(run: Run) -> Stop:
    """Trials until the study holds what was asked, the budget or timeout ends it, or a
    signal does; with ``--workers``, as many worker processes as fit run them."""
    announce(run)
    total = total_trials(run)
    left = run.config.workers.workers if total is None else total - finished(run)
    count = workers_to_start(run, left)
    try:
        with held_stderr() if run.config.output.quiet else contextlib.nullcontext():
            stop = supervised(run, count) if run.config.workers.workers > 1 else local(run)
    except KeyboardInterrupt:
        stop = Stop(Ended.INTERRUPTED)
    if stop.why is Ended.DONE and total is not None and finished(run) < total:
        # Workers stop on their own timeout or budget; they exit 0 all the same.
        study = run.config.study
        stop = Stop(Ended.BUDGET if study.budget else Ended.TIMEOUT if study.timeout else stop.why)
    return stop


def finished(run: Run) -> int:
    return finished_count(run.study, run.plan)


def local(run: Run) -> Stop:
    def after(study) -> None:
        after_trial(run)

    return run_trials(run.study, run.objective, run.plan, run.lock, after, run.progress.waiting)


def supervised(run: Run, count: int) -> Stop:
    """``count`` ``--workers`` children on this study; the URLs travel in their environment
    (never on a command line, which every user of the machine can read)."""
    config, tracking = run.config, run.tracking
    parent, uri = (tracking.runs.parent_id, tracking.uri) if tracking else (None, None)
    left = run.budget.left() - WORKER_EXIT_SECONDS
    deadline = time.time() + left if config.study.budget else None
    children = worker_config(config, parent, uri, deadline)
    return supervise(children, count, run.inputs.device, lambda: after_trial(run))


def after_trial(run: Run) -> None:
    run.progress.after_trial(run.study, finished(run))
    if run.tracking is not None:
        run.tracking.runs.end_orphans(run.study)


def workers_to_start(run: Run, left: int) -> int:
    """``--workers K``, as many as fit (trials left, cores, memory); when that is fewer, one
    line says why, even with --quiet."""
    wanted = run.config.workers.workers
    if wanted == 1:
        return 1
    count, line = workers_that_fit(wanted, left, run.splits.nbytes)
    if line:
        print(line, file=sys.stderr)
    return count


def announce(run: Run) -> None:
    config = run.config
    if not config.output.quiet:
        study, workers = config.study, config.workers
        print(
            f"study {study.name!r} on {run.inputs.storage_url}: {study.sampler} sampler, "
            f"{study.pruner} pruner, {describe(run.inputs.device)}, torch {torch.__version__}, "
            f"{workers.workers} worker(s) x {workers.threads} thread(s)"
        )


def work(run: Run) -> int:
    """A ``--workers`` child: run trials, leave the end of the study to the supervisor."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    orphans = run.tracking.runs.end_orphans if run.tracking is not None else None
    try:
        with held_stderr():  # a worker is quiet; its chatter shows only if it fails
            run_trials(run.study, run.objective, run.plan, run.lock, orphans)
    except KeyboardInterrupt:
        line = f"worker {os.getpid()}: stopped by signal; its running trial is marked FAIL"
        print(line, file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- 3. finish: the winner, the champion, its test accuracy, its registration ----------------


def finish(run: Run, outcome: Outcome) -> None:
    """Tables, then (if a trial completed) the winner, the champion, its test accuracy, its
    pictures in Optuna and MLflow, and its registration; ``outcome.stage`` says where it is."""
    outcome.files = save_tables(run.study, run.inputs, run.config)
    outcome.elsewhere = ending.claim(run.study, run.lock)
    if outcome.elsewhere:  # another process is ending this study: one final fit, not two
        outcome.best = best_or_none(run.study)
        return
    with ending.leased(run.study):
        outcome.stage = "the re-runs of the top trials"
        outcome.choice = winner.for_run(run)
        if outcome.choice is not None:
            crown(run, outcome)
        elif run.tracking is not None:
            run.tracking.runs.log_results({}, files=outcome.files)


def best_or_none(study):
    try:
        return study.best_trial
    except ValueError:  # no trial completed
        return None


def close_run(run: Run, stop: Stop, outcome: Outcome) -> None:
    """The progress bar's last line; every MLflow run this process opened, ended. The parent
    run, which processes working on the study together share, is ended by the one that ended
    the study (or was interrupted), not by one that left the end to another."""
    run.progress.close()
    if run.tracking is not None:
        run.tracking.runs.end_final_killed()
        run.tracking.runs.end_orphans(run.study)
        if not outcome.elsewhere:
            status = "KILLED" if stop.why is Ended.INTERRUPTED else "FINISHED"
            run.tracking.runs.end_parent(status)


def crown(run: Run, outcome: Outcome) -> None:
    """The winner's champion, scored once on the test set, pictured, and registered."""
    study, splits, tracking = run.study, run.splits, run.tracking
    best = outcome.best = next(t for t in study.trials if t.number == outcome.choice.winner.number)
    outcome.stage = "the final fit"
    chosen = champion.choose(run, best)
    outcome.stage = "the test evaluation"
    _, outcome.test_accuracy, predicted = evaluate_and_predict(chosen.model, *splits.test)
    outcome.note = chosen.note
    study.set_user_attr("test_accuracy", {"trial": best.number, "value": outcome.test_accuracy})
    outcome.stage = "the pictures"
    figures, matrix = pictures(predicted, splits.test, splits.mean, splits.std, "test")
    upload(run.store, study, figures)  # the champion's, on the study's page in optuna-dashboard
    if tracking is not None:
        metrics = {"test_accuracy": outcome.test_accuracy, "best_val_accuracy": best.value}
        metrics["winner_val_mean"] = outcome.choice.winner.mean
        tracking.log_results(study, metrics, outcome.files, figures, matrix)
    close(figures)
    if tracking is None:
        return
    tracking.runs.end_final(outcome.test_accuracy)
    shipped = standalone(chosen.model, splits.mean, splits.std)
    example = (splits.test[0][:4].cpu() * splits.std + splits.mean).numpy()
    accuracy = outcome.test_accuracy
    outcome.stage = "the registration"
    with run.lock:  # several workers may end the study together: one registers
        outcome.registered = tracking.register(study, best, shipped, accuracy, example)


# --- 4. report: the summary a person reads ---------------------------------------------------


def summary(run: Run, outcome: Outcome, stop: Stop, seconds: float) -> Summary:
    line = tracking_line(run, outcome.registered)
    return summary_of(run.config, run.study, stop, seconds, outcome, line)


def tracking_line(run: Run, registered: str | None) -> str:
    if run.tracking is None:
        return "MLflow: off (--no-mlflow): nothing was tracked"
    uri = mask_url(run.tracking.uri)
    if run.tracking.health.lost:
        missing = ", ".join(missed_words(run.tracking.health.missed)) or "nothing yet"
        return (
            f"MLflow: FAILED {run.tracking.health.lost}\nMLflow is missing: {missing}; "
            "re-run this command with the server up to log them (exit status 1)"
        )
    ui = f"open it: {mlflow_ui_command(uri)}" if not uri.startswith("http") else f"open it: {uri}"
    return f"MLflow: experiment {run.config.tracking.experiment!r} at {uri}    {ui}\n{registered}"


# What each skipped tracking call would have logged, in a person's words.
MISSED = {
    "start_trial": "trial runs",
    "log_step": "trial runs",
    "end_trial": "trial runs",
    "save": "the best trial's checkpoint",
    "log_rerun": "the re-runs",
    "start_final": "the final fit's run",
    "log_final_epoch": "the final fit's run",
    "end_final": "the final fit's run",
    "log_results": "the results (tables, pictures)",
    "register": "the champion's registration",
    "is_champion": "the champion's registration",
    "end_parent": "the parent run's end",
}


def missed_words(calls) -> list[str]:
    return list(dict.fromkeys(MISSED.get(c, c) for c in calls))


def exit_now(code: int) -> NoReturn:
    """Exit with ``code`` without the interpreter's last garbage collections walking every
    object the run made (torch, MLflow, plotly, pandas): measured on 2 CPU cores, 3.5-3.9 s
    after a tiny run and about 20 s after a 24-minute one, past its --budget
    (``python -m benchmarks.exit``; docs/measured.md). Frozen objects are still freed by
    reference counting and every atexit handler still runs (logs flushed, MLflow's threads
    stopped); only cycles are left to the process's end."""
    gc.freeze()
    raise SystemExit(code)


if __name__ == "__main__":
    exit_now(main())
