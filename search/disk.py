"""A full disk, recognized wherever it surfaces, and said in one line.

A file system that fills up reaches the run in many shapes: ``OSError`` ENOSPC (or EDQUOT, a
quota) from a file written here (tables, the Optuna artifact store, a journal storage),
SQLite's "database or disk is full" wrapped by SQLAlchemy and again by Optuna
(``StorageInternalError``), PostgreSQL's ``DiskFull`` (SQLSTATE 53100) from a server's disk.
``full(exc)`` looks through an exception's causes for any of them; ``line(exc, places)`` says
which of the places the run writes sits on a full file system and what could not be written
there. The study's finished trials are safe (each was committed when it ended); the trial that
was running stays RUNNING and the next run of the same command, with space freed, fails and
re-queues it (``search.recovery``).
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
SQLITE_FULL = 13  # SQLite's result code for "database or disk is full"
POSTGRES_DISK_FULL = "53100"  # SQLSTATE disk_full
ROOM = 64 * 1024  # bytes: a file system with less than this free is the full one


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or while handling, once each."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def full(exc: BaseException) -> BaseException | None:
    """The cause of ``exc`` that says a disk is full, or ``None``."""
    for cause in causes(exc):
        if isinstance(cause, OSError) and cause.errno in FULL_ERRNOS:
            return cause
        if getattr(cause, "sqlite_errorcode", None) == SQLITE_FULL:
            return cause
        if "database or disk is full" in str(cause):  # a wrapper that kept only the words
            return cause
        if getattr(cause, "sqlstate", None) == POSTGRES_DISK_FULL:
            return cause
    return None


def free_bytes(path: Path) -> int | None:
    """Bytes free on the file system holding ``path`` (its nearest existing parent)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def line(exc: BaseException, places: dict[str, Path | None], study: str) -> str:
    """One line: what could not be written and where, and the error that said so. A database's
    error is the study's (``study``: its storage, as shown); a file's names its path, put in
    words by ``places`` (what is written where) when it lies under one of them; else the first
    of ``places`` on a file system with no room left."""
    cause = full(exc) or exc
    said = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    named = getattr(cause, "filename2", None) or getattr(cause, "filename", None)
    if not isinstance(cause, OSError):
        what = f"the study ({study})"
    elif named:
        what = _in_words(Path(named), places)
    else:
        full_places = [f"{w} ({p})" for w, p in places.items() if _no_room(p)]
        what = full_places[0] if full_places else "a file of this run"
    return (
        f"the disk is full: could not write {what}: {said}; free space and run the same "
        "command again: it resumes where it stopped"
    )


def _in_words(path: Path, places: dict[str, Path | None]) -> str:
    for what, place in places.items():
        if place is not None and (path == place or place in path.parents):
            return f"{what} ({path})"
    return str(path)


def _no_room(path: Path | None) -> bool:
    if path is None:
        return False
    free = free_bytes(path)
    return free is not None and free < ROOM
