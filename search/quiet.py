"""Keeping the terminal for what matters: the progress bar, the summary and our own errors.

Optuna logs every trial, MLflow prints "Successfully registered model" and "Created version"
(its ``eprint`` writes to whatever ``sys.stderr`` is at the time), and libraries warn. The
summary already says all of it, so library output is held back while the run works and shown
only if something fails; ``--quiet`` also drops Optuna's per-trial warnings and the bar.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator

import optuna

from search import disk
from search.feasible import CannotRun
from search.reconnect import StorageLost


def quiet_libraries(quiet: bool = False) -> None:
    """Optuna at WARNING (ERROR with ``--quiet``), torch.export and alembic at ERROR, MLflow
    and SQLAlchemy silent (every failure of theirs reaches the user as one line of ours:
    MLflow's logged a whole chained traceback when its store's disk filled), and no "View run
    ... at" line on stdout each time MLflow ends a run over HTTP."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # MLflow sets its own loggers' level when it is imported (lazily, later): tell it by name.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "CRITICAL")
    level = optuna.logging.ERROR if quiet else optuna.logging.WARNING
    optuna.logging.set_verbosity(level)
    for handler in logging.getLogger("optuna").handlers:
        handler.addFilter(_without_traceback)
    for name in ("torch._export", "torch.export", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in ("mlflow", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", message="The number of trials is too small")


def _without_traceback(record: logging.LogRecord) -> bool:
    """Optuna logs a trial stopped by Ctrl-C/SIGTERM, or one that cannot run here, with a
    traceback; the user needs the one line that says which trial and why, not where. A trial
    that a full disk stopped is not logged at all: the run's own line says it."""
    error = record.exc_info[1] if record.exc_info else None
    if error is not None and disk.full(error) is not None:
        return False
    if isinstance(error, (KeyboardInterrupt, CannotRun)):
        record.exc_info = None
    return True


@contextlib.contextmanager
def held_stderr() -> Iterator[io.StringIO]:
    """Hold what is written to ``sys.stderr`` inside the block; replay it if the block raises
    anything but an interrupt or a lost storage (then the chatter may explain the failure)."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield buffer
    except (KeyboardInterrupt, StorageLost):  # each says what happened in its own line
        raise
    except BaseException:
        sys.stderr.write(buffer.getvalue())
        raise
