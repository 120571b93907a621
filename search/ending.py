"""Who ends a study: however many processes or machines finish its trials together, one of
them re-runs the top trials, fits the champion and registers it.

The end is claimed in the study itself (the user attribute ``ending``), under the storage's
claim lock, with a lease the claimant renews from a thread while it works. The claim names its
holder as crash recovery names a trial's worker (``search.process``: ``host:pid``, its boot
and pid namespace, its start time). Another process that reaches the end while the lease is
live leaves it to the claimant and says who that is, unless the claimant ran on this machine
and is gone (SIGKILL, the OOM killer): then it takes the end over at once. A claimant on
another machine that dies stops renewing, and once its lease has run out the next run of the
study takes the end over. One that is interrupted gives the lease back at once. A finished end
is recorded (``done``) and blocks nobody: a resumed study with more trials ends again. Taking
over an end its holder left unfinished is said (``Claimed.taken_from``), so the hooks can end
what the holder left open and use what it finished.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import optuna

from search import process
from search.process import me
from search.storage import Lock

KEY = "ending"  # the study's user attribute holding the claim
LEASE_SECONDS = 60.0  # how long a silent claimant blocks the others: a minute, not a study
RENEW_SECONDS = 10.0  # well inside the lease: a slow storage write cannot let it lapse


@dataclass(frozen=True)
class Claimed:
    """What claiming the end found: ``elsewhere``, the summary's line naming a live holder
    (the end is not ours); or the end is ours, ``taken_from`` the holder that left it
    unfinished without giving it back (``host:pid``; empty if the end was free)."""

    elsewhere: str = ""
    taken_from: str = ""


def holder(claim: dict[str, Any] | None, now: float) -> str | None:
    """Who else holds a live claim, or ``None`` if the end is free (no claim, ours, done,
    its lease ran out, or its holder is a process of this machine that is gone)."""
    if not claim or claim.get("done") or claim.get("owner") == me():
        return None
    if claim.get("until", 0) <= now:
        return None
    if process.gone(claim["owner"], claim.get("space"), claim.get("started")):
        return None
    return claim["owner"]


def left_unfinished(claim: dict[str, Any] | None) -> str:
    """The holder of a claim that was neither done nor given back (its process died), or
    ``""``."""
    if not claim or claim.get("done") or not claim.get("until"):
        return ""
    return claim.get("owner", "") if claim.get("owner") != me() else ""


def held_by_line(claim: dict[str, Any]) -> str:
    until = datetime.datetime.fromtimestamp(claim["until"]).strftime("%H:%M:%S")
    return (
        f"the champion is being fitted by {claim['owner']}, which claimed the end of this study "
        f"(its lease runs to {until} and is renewed while it works); nothing fitted here"
    )


def claim(study: optuna.Study, lock: Lock) -> Claimed:
    """Under ``lock``: the end is ours (taken from whom, if anyone), or the line naming who
    has it."""
    with lock:
        current = study.user_attrs.get(KEY)
        if holder(current, time.time()) is not None:
            return Claimed(elsewhere=held_by_line(current))
        _write(study, done=False)
    return Claimed(taken_from=left_unfinished(current))


def _write(study: optuna.Study, done: bool, until: float | None = None) -> None:
    until = time.time() + LEASE_SECONDS if until is None else until
    study.set_user_attr(KEY, {**process.record(), "until": until, "done": done})


@contextlib.contextmanager
def leased(study: optuna.Study) -> Iterator[None]:
    """Renew our claim every ``RENEW_SECONDS`` while the block runs; then mark it done, or,
    if the block raised (an interrupt), give it back so the next run need not wait."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(RENEW_SECONDS):
            with contextlib.suppress(Exception):  # a blink of the storage: the next tick
                _write(study, done=False)

    thread = threading.Thread(target=renew, name="ending-lease", daemon=True)
    thread.start()
    done = False
    try:
        yield
        done = True
    finally:
        stop.set()
        thread.join()
        if done:
            _write(study, done=True)
        else:
            with contextlib.suppress(Exception):
                _write(study, done=False, until=0.0)
