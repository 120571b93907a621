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
1 a worker failed, trial after trial could not run on this data, no trial completed, a disk
filled up, or MLflow failed mid-run (the study went on; re-running the command logs what
MLflow missed), 130 interrupted (Ctrl-C or SIGTERM; the running trial is marked and the
summary printed). A run killed at the end of its study is finished by the same command.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import time
from typing import NoReturn

import torch

from data import DataError
from search import disk
from search.budget import process_start
from search.champion import EndSettings
from search.device import describe
from search.errors import UserError
from search.finish import End, Outcome, best_or_none, finish
from search.pipeline import Run
from search.prepare import open_run, prepare, total_trials
from search.quiet import held_stderr, quiet_libraries
from search.reconnect import StorageLost, lost_in
from search.report import Summary, save_tables, summary_of, verdict
from search.study import Ended, Stop, finished_count, run_trials
from search.workers import supervise, worker_config, workers_that_fit

TRIALS_ONLY = "the end of the study (re-runs, final fit, champion) is left to a later run"
UNTRACKED = "MLflow: off (--no-mlflow): nothing was tracked"
# A --workers child's exit (interpreter teardown, its MLflow run ended) and the supervisor's next
# look at it come after the child's last trial, before the supervisor's own end: kept from the
# children's deadline (with none kept, a loaded CI run ended 0.4 s past a 60 s budget).
WORKER_EXIT_SECONDS = 5.0


def main(argv: list[str] | None = None) -> int:
    started = process_start()  # --budget counts from the start of the process
    quiet_libraries()
    try:
        run = prepare(argv, started, __doc__)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except (UserError, DataError) as exc:  # bad input: one line, nothing written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        open_run(run)
        return work(run) if run.config.workers.worker else lead(run)
    except Exception as exc:  # the storage server gone past --reconnect-wait: one line, exit 1
        if (lost := lost_in(exc)) is not None:
            return storage_lost(run, lost)
        if disk.full(exc) is None:
            raise
        print(f"error: {disk.line(exc, run.places, str(run.inputs.storage_url))}", file=sys.stderr)
        return 1


def lead(run: Run) -> int:
    """Search, finish, summary: the run of a person's command (not a --workers child)."""
    start, outcome = time.perf_counter(), Outcome()
    # SIGTERM is Ctrl-C from here to the summary: a signal at any moment ends every MLflow run
    # this process opened (KILLED) and prints what finished; the same command finishes the job.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        stop = search(run)
        if run.config.workers.trials_only:
            outcome.best, outcome.elsewhere = best_or_none(run.study), TRIALS_ONLY
        elif stop.why not in (Ended.INTERRUPTED, Ended.DISK_FULL):
            stop = finish_or_interrupted(run, outcome, stop)
        else:  # what finished, for the summary
            outcome.best = best_or_none(run.study)
        close_run(run, stop, outcome)
    finally:
        signal.signal(signal.SIGTERM, previous)
    status = exit_status(run, stop, outcome)
    seconds = time.perf_counter() - start
    print("\n".join(summary(run, outcome, stop, seconds, verdict(status, stop)).lines()))
    return status


def storage_lost(run: Run, exc: StorageLost) -> int:
    """The storage server stayed away: this process's MLflow runs end (its trial's run FAILED
    by the objective, the rest KILLED), its trial is left to the study's next worker."""
    if run.progress is not None:
        run.progress.close()
    run.hooks.lost()
    print(f"error: {exc}", file=sys.stderr)
    return 1


def exit_status(run: Run, stop: Stop, outcome: Outcome) -> int:
    """The study's own status; 1 if it ended well but MLflow missed part of it, or if this
    run ended the study with no champion (no trial completed) and left it to nobody."""
    if stop.exit_status != 0:
        return stop.exit_status
    if run.hooks.failed():
        return 1
    return 1 if outcome.test_accuracy is None and not outcome.elsewhere else 0


def disk_full(run: Run, exc: BaseException, where: str) -> Stop:
    """A full disk stops the run: one line naming what could not be written where; the
    summary says what finished (the study keeps every trial that ended)."""
    print(f"error: {disk.line(exc, run.places, str(run.inputs.storage_url))}", file=sys.__stderr__)
    return Stop(Ended.DISK_FULL, where)


# --- search: the trials, here or in --workers processes ---------------------------------------


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
    except Exception as exc:
        if disk.full(exc) is None or lost_in(exc) is not None:
            raise
        return disk_full(run, exc, "during the trials")
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
    config = run.config
    parent, uri = run.hooks.worker_tracking() or (None, None)
    left = run.budget.left() - WORKER_EXIT_SECONDS
    deadline = time.time() + left if config.study.budget else None
    children = worker_config(config, parent, uri, deadline)
    return supervise(children, count, run.inputs.device, lambda: after_trial(run))


def after_trial(run: Run) -> None:
    run.progress.trials_done(run.study, finished(run))
    run.hooks.after_trial(run.study)


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
    try:
        with held_stderr():  # a worker is quiet; its chatter shows only if it fails
            run_trials(run.study, run.objective, run.plan, run.lock, run.hooks.after_trial)
    except KeyboardInterrupt:
        line = f"worker {os.getpid()}: stopped by signal; its running trial is marked FAIL"
        print(line, file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- finish: the end of the study (search.finish), and the run closed ---------------------------


def finish_or_interrupted(run: Run, outcome: Outcome, stop: Stop) -> Stop:
    """The tables, then ``finish``; and why the trials stopped, or, interrupted, the stage
    the end was at."""
    try:
        with held_stderr():  # MLflow narrates registering; the summary says it in one line
            outcome.files = save_tables(run.study, run.inputs, run.config)
            finish(end_of(run), outcome)
    except KeyboardInterrupt:
        return Stop(Ended.INTERRUPTED, f"during {outcome.stage}")
    except Exception as exc:
        if disk.full(exc) is None or lost_in(exc) is not None:
            raise
        return disk_full(run, exc, f"during {outcome.stage}")
    return stop


def end_of(run: Run) -> End:
    """What the end of the study takes from the run."""
    training, seed = run.config.training, run.config.study.seed
    settings = EndSettings(
        training.epochs, training.final_epochs, training.reruns, seed, run.end_seconds
    )
    return End(
        run.study, run.splits, run.budget, run.plan, settings, run.hooks, run.lock, run.store
    )


def close_run(run: Run, stop: Stop, outcome: Outcome) -> None:
    """The progress bar's last line; the hooks told how the run ended (``None``: another
    process ends the study, and ends what this one shares with it). After a full disk they are
    not: what they would end (MLflow's runs) the same command ends once space is freed."""
    run.progress.close()
    if stop.why is Ended.DISK_FULL:  # nothing more is written: the same command ends them
        return
    status = "KILLED" if stop.why is Ended.INTERRUPTED else "FINISHED"
    run.hooks.closed(run.study, None if outcome.elsewhere else status)


# --- summary: what a person reads ------------------------------------------------------------


def summary(run: Run, outcome: Outcome, stop: Stop, seconds: float, verdict: str) -> Summary:
    line = run.hooks.summary_line(outcome.registered) or UNTRACKED
    done = summary_of(run.config, run.study, stop, seconds, outcome, line)
    done.verdict = verdict
    return done


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
