"""search/disk.py: a full disk, recognized in every shape it takes, and real runs on a small
file system (a tmpfs this test mounts) that fills mid-study: under the study, one line
naming it, the summary, exit 1, and the same command with space freed finishes the job; under
MLflow's store only, tracking off as for a dead server while the trials go on, and a later run
logs what MLflow missed."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from search import disk
from tests.helpers import KILLABLE, QUICK, Forked, in_process, load


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs of this test's own (it needs the right to mount: root here and in CI)."""
    where = tmp_path / "small"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(where: Path) -> Path:
    """Every free byte of ``where``'s file system, taken by one file; returns it."""
    filler = where / "filler"
    chunk = b"\0" * (1 << 20)
    with contextlib.suppress(OSError), open(filler, "wb") as f:
        while True:
            f.write(chunk)
            f.flush()
    with contextlib.suppress(OSError), open(filler, "ab") as f:  # the last partial pages
        while True:
            f.write(b"\0" * 4096)
            f.flush()
    return filler


def finished(storage: str, name: str) -> int:
    try:
        trials = load(storage, name).get_trials()
    except KeyError:
        return 0
    return sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)


def wait_for(condition, victim: Forked, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# --- what counts as a full disk ----------------------------------------------------------------


def test_a_full_disk_is_recognized_through_every_wrapper(small_disk):
    fill(small_disk)
    with pytest.raises(OSError) as written:
        (small_disk / "more").write_bytes(b"x" * 10_000)
    assert disk.full(written.value) is written.value
    with pytest.raises(sqlite3.OperationalError) as committed:
        with sqlite3.connect(small_disk / "x.db") as db:
            db.execute("CREATE TABLE t (x)")
            db.executemany("INSERT INTO t VALUES (?)", [("y" * 1000,)] * 100)
    wrapped = optuna.exceptions.StorageInternalError("An exception is raised during the commit")
    wrapped.__cause__ = committed.value
    assert disk.full(wrapped) is committed.value
    assert disk.full(ValueError("database is locked")) is None
    assert disk.full(OSError(errno.EACCES, "Permission denied")) is None


def test_the_line_names_the_place_on_the_full_file_system(small_disk, tmp_path):
    fill(small_disk)
    places = {"its tables": small_disk, "its pictures": tmp_path / "pictures"}
    anonymous = disk.line(OSError(errno.ENOSPC, "No space left on device"), places, "db")
    assert anonymous.startswith(f"the disk is full: could not write its tables ({small_disk}): ")
    assert "its pictures" not in anonymous and "run the same command again" in anonymous
    named = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "pictures" / "a.png"))
    assert f"could not write its pictures ({tmp_path}/pictures/a.png)" in (
        disk.line(named, places, "db")
    )
    database = sqlite3.OperationalError("database or disk is full")
    assert "could not write the study (sqlite:///x.db): database" in (
        disk.line(database, places, "sqlite:///x.db")
    )


# --- real runs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "trials", "stage"),
    [(1, 6, "during the trials"), (3, 3, "during the")],
    ids=["during the trials", "during the end"],
)
def test_a_disk_that_fills_under_the_study_stops_the_run_in_one_line_and_it_resumes(
    small_disk, tmp_path, when, trials, stage
):
    """The study's SQLite file on a tmpfs filled once ``when`` trials have finished (mid-study,
    or as its end begins): one line naming it on stderr, the summary of what finished, exit 1,
    no traceback, no library's log lines; the finished trials stay; with space freed the same
    command finishes the study and its end."""
    storage = f"sqlite:///{small_disk / 'optuna.db'}"
    args = ["--storage", storage, "--trials", str(trials), "--study", "full", *QUICK, *KILLABLE]
    args += ["--final-epochs", "3"]
    victim = Forked(args, tmp_path)
    wait_for(lambda: finished(storage, "full") >= when, victim)
    filler = fill(small_disk)
    out, err = victim.communicate(timeout=300)
    assert victim.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: the disk is full: could not write "), err
    assert str(small_disk) in lines[0] or storage in lines[0]
    assert f"stopped {stage}" in out.strip().splitlines()[0], out
    assert finished(storage, "full") >= when
    filler.unlink()
    again = in_process(args, tmp_path)
    assert again.returncode == 0, again.stderr
    states = [t.state.name for t in load(storage, "full").get_trials()]
    assert states.count("COMPLETE") + states.count("PRUNED") == trials and "RUNNING" not in states
    assert "test_accuracy" in load(storage, "full").user_attrs


def test_a_disk_that_fills_under_mlflows_store_turns_tracking_off_and_trials_go_on(
    small_disk, tmp_path
):
    """MLflow's store alone on the full tmpfs: one warning line naming it, the trials go on
    and the study ends, summary 'MLflow: FAILED', exit 1; with space freed the same command
    logs the trials MLflow missed and registers the champion."""
    uri = f"sqlite:///{small_disk / 'mlflow.db'}"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = ["--storage", storage, "--trials", "4", "--study", "mlfull", *KILLABLE]
    args += [a for a in QUICK if a != "--no-mlflow"] + ["--tracking-uri", uri]
    args += ["--registered-model", "mlfull-model"]
    victim = Forked(args, tmp_path)
    wait_for(lambda: finished(storage, "mlfull") >= 1, victim)
    filler = fill(small_disk)
    out, err = victim.communicate(timeout=300)
    assert victim.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"warning: MLflow at {uri} failed") and "disk is full" in lines[0]
    assert finished(storage, "mlfull") == 4 and "MLflow: FAILED" in out
    filler.unlink()
    again = in_process(args, tmp_path)
    assert again.returncode == 0, again.stderr
    client = MlflowClient(uri)
    assert client.get_model_version_by_alias("mlfull-model", "champion").tags["study"] == "mlfull"
    experiment = client.get_experiment_by_name("mlfull").experiment_id
    runs = client.search_runs([experiment])
    assert {str(n) for n in range(4)} <= {r.data.tags.get("optuna_trial_number") for r in runs}
    assert any(r.data.tags.get("backfilled") == "true" for r in runs)  # missed, logged later
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
