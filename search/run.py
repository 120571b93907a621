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

import gc
import sys
import time
from typing import NoReturn

from data import DataError
from models import UserModelError
from search import disk
from search.budget import process_start
from search.champion import EndSettings
from search.errors import UserError
from search.finish import End, Outcome, finish
from search.pareto import most_accurate
from search.pipeline import Run
from search.prepare import open_run, prepare
from search.quiet import held_stderr, quiet_libraries
from search.reconnect import StorageLost, lost_in
from search.report import Summary, save_tables, summary_of, verdict
from search.signals import interrupts
from search.study import Ended, Stop
from search.trials import disk_full, search, work

TRIALS_ONLY = "the end of the study (re-runs, final fit, champion) is left to a later run"
UNTRACKED = "MLflow: off (--no-mlflow): nothing was tracked"


def main(argv: list[str] | None = None) -> int:
    started = process_start()  # --budget counts from the start of the process
    quiet_libraries()
    try:
        run = prepare(argv, started, __doc__)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except (UserError, DataError, UserModelError) as exc:  # bad input: one line, nothing written
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
    with interrupts():
        stop = search(run)
        if run.config.workers.trials_only:
            outcome.best, outcome.elsewhere = most_accurate(run.study), TRIALS_ONLY
        elif stop.why not in (Ended.INTERRUPTED, Ended.DISK_FULL):
            stop = finish_or_interrupted(run, outcome, stop)
        else:  # what finished, for the summary
            outcome.best = most_accurate(run.study)
        close_run(run, stop, outcome)
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
        training.epochs,
        training.final_epochs,
        training.reruns,
        seed,
        run.end_seconds,
        training.precision,
        run.inputs.limits,
        run.config.study.pareto,
        run.config.study.champion_trial,
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
