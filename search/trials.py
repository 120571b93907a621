"""The search step of a run: trials until the study holds what was asked, here or in
``--workers`` processes, and a ``--workers`` child's own loop (``work``).

``search`` runs the trials (``search.study.run_trials``) in this process, or supervises K
children that do (``search.workers``); either way it returns why the trials stopped, a full
disk included (``search.disk``: one line, the run stops, the same command resumes).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

import torch

from search import disk
from search.device import describe
from search.pipeline import Run
from search.prepare import total_trials
from search.quiet import held_stderr
from search.reconnect import lost_in
from search.signals import interrupts
from search.study import Ended, Stop, finished_count, run_trials
from search.workers import supervise, worker_config, workers_that_fit

# A --workers child's exit (interpreter teardown, its MLflow run ended) and the supervisor's next
# look at it come after the child's last trial, before the supervisor's own end: kept from the
# children's deadline (with none kept, a loaded CI run ended 0.4 s past a 60 s budget).
WORKER_EXIT_SECONDS = 5.0


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
    config, found = run.config, run.inputs.space.sweep
    if not config.output.quiet and found is not None and found.header.notes:
        print(f"--space {found.path}: {'; '.join(found.header.notes)}")
    if not config.output.quiet:
        study, workers = config.study, config.workers
        print(
            f"study {study.name!r} on {run.inputs.storage_url}: {study.sampler} sampler, "
            f"{study.pruner} pruner, {describe(run.inputs.device)}, "
            f"{config.training.precision}, torch {torch.__version__}, "
            f"{workers.workers} worker(s) x {workers.threads} thread(s)"
        )


def work(run: Run) -> int:
    """A ``--workers`` child: run trials, leave the end of the study to the supervisor."""
    with interrupts():
        try:
            with held_stderr():  # a worker is quiet; its chatter shows only if it fails
                run_trials(run.study, run.objective, run.plan, run.lock, run.hooks.after_trial)
        except KeyboardInterrupt:
            line = f"worker {os.getpid()}: stopped by signal; its running trial is marked FAIL"
            print(line, file=sys.stderr)
            return 130
    return 0


def disk_full(run: Run, exc: BaseException, where: str) -> Stop:
    """A full disk stops the run: one line naming what could not be written where; the
    summary says what finished (the study keeps every trial that ended)."""
    print(f"error: {disk.line(exc, run.places, str(run.inputs.storage_url))}", file=sys.__stderr__)
    return Stop(Ended.DISK_FULL, where)
