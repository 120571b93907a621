"""search/run.py end to end: the CLI on the real data, in-process and as a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from search.names import file_stem
from search.run import main
from search.space import WARM_START
from tests.helpers import (
    AWKWARD,
    KILLABLE,
    QUICK,
    RUN_MANAGER,
    cli_command,
    kill_mid_trial,
    load,
    start,
    states,
)


def test_the_command_line_is_recorded_with_passwords_masked():
    from search.prepare import command_line

    url = "postgresql://u:secret@127.0.0.1/db?password=secret2"
    line = command_line(["--storage", url, f"--tracking-uri={url}", "--study", "a b"])
    assert line.startswith("python -m search.run --storage 'postgresql://u:***@127.0.0.1/db")
    assert "--tracking-uri=postgresql://u:***@" in line and "'a b'" in line
    assert "secret" not in line


def test_help_is_the_documentation():
    command, env = cli_command(["--help"])
    helped = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    for flag in (
        "--trials",
        "--storage",
        "--sampler",
        "--grid",
        "--pruner",
        "--train-size",
        "--budget",
        "--final-epochs",
        "--step-images",
        "--no-warm-start",
    ):
        assert flag in helped.stdout


def test_a_run_then_a_resume_add_trials_and_tables(finished):
    cwd, (first, second) = finished
    assert "ended by --trials 2" in first.stdout and "ended by --trials 3" in second.stdout
    for out in (first.stdout, second.stdout):
        assert "best trial #" in out and "optuna-dashboard" in out
        assert "test_accuracy (held-out 1,000 images): " in out  # QUICK's --test-size
    trials = load(f"sqlite:///{cwd / 'optuna.db'}", AWKWARD).get_trials()
    assert len(trials) == 3 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    for t in trials:
        assert t.intermediate_values, f"trial {t.number} reported no step"
        assert {"n_parameters", "device", "step_seconds", "history"} <= t.user_attrs.keys()
    assert trials[2].params not in [t.params for t in trials[:2]], "resume resampled"
    rows = json.loads((cwd / f"{file_stem(AWKWARD)}-trials.json").read_text())
    assert len(rows) == 3


def test_a_new_study_starts_with_the_article_cnn_and_reports_sub_epoch_steps(finished):
    cwd, _ = finished
    study = load(f"sqlite:///{cwd / 'optuna.db'}", AWKWARD)
    trials = study.get_trials()
    first = trials[0]
    assert first.params == WARM_START and first.user_attrs["warm_start"]
    gpu = __import__("torch").cuda.is_available()  # --device auto
    assert study.user_attrs["space"] == ("cuda" if gpu else "cpu")  # a resume keeps it
    assert study.user_attrs["opened"] == 2  # the run and the resume, each its sampler seed
    # The command that created the study, not the resume's (which asked for 3 trials).
    assert study.user_attrs["command"].startswith("python -m search.run --trials 2 ")
    assert sum(t.params == WARM_START for t in trials) == 1, "a resume is not warm-started"
    for trial in trials:
        steps = sorted(trial.intermediate_values)
        assert steps == list(range(1, len(steps) + 1)) and len(steps) <= 4  # 2,000 / 500
        epochs = [h["epoch"] for h in trial.user_attrs["history"]]
        assert epochs == pytest.approx([0.25, 0.5, 0.75, 1.0][: len(steps)], abs=0.02)
    assert len(first.intermediate_values) == 4  # the first trial is never pruned


def test_final_fit_trains_the_winning_configuration_on_train_and_validation(finished):
    cwd, (first, _) = finished
    study = load(f"sqlite:///{cwd / 'optuna.db'}", AWKWARD)
    best = study.user_attrs["winner"]["trial"]  # the study's now, after the resume
    chosen = [line for line in first.stdout.splitlines() if line.startswith("winner: trial #")]
    first_winner = int(re.match(r"winner: trial #(\d+)", chosen[0]).group(1))
    assert f"final fit of trial #{first_winner}: 1 epochs on train + validation" in first.stdout
    assert study.user_attrs["test_accuracy"]["trial"] == best


def test_awkward_study_names_work_and_write_only_here(finished):
    cwd, _ = finished
    assert load(f"sqlite:///{cwd / 'optuna.db'}", AWKWARD).study_name == AWKWARD
    written = {p.name for p in cwd.iterdir()}
    assert f"{file_stem(AWKWARD)}-trials.csv" in written and "/" not in file_stem(AWKWARD)
    assert not list(cwd.parent.parent.glob("escaped*")), "a file escaped the directory"


SECRET = "pw-S3cr/t:x"  # never printed, in any spelling
# The table of bad input (docs/reference.md), one row each: the flags, then what the one line
# says. Flag checks that need no file are tested directly in test_cli.py; a few stay here to
# keep main's side of them (one line, exit 2, nothing written).
# "TRACKED" rows run with MLflow on (its default store in the empty working directory).
PROBES = [
    (["--trials", "0"], "--trials: must be a positive integer, got '0'"),
    (["--pruner", "wizard"], "--pruner: invalid choice: 'wizard'"),
    (["--grid", "missing.json"], "--grid missing.json: cannot be read"),
    (["--grid", "bad.json"], "--grid bad.json: not valid json"),
    (["--device", "tpu"], "--device must be one of auto, cpu, cuda, mps, got 'tpu'"),
    (["--storage", f"postgresql://u:{SECRET}@127.0.0.1:1/x"], "--storage postgresql://u:***@"),
    (
        ["--storage", "postgresql://postgres:SECRET/x@127.0.0.1:1/db"],
        "--storage postgresql://postgres:***@127.0.0.1:1/db: cannot open",
    ),
    (
        ["--storage", "postgresql://postgres:p@ss@127.0.0.1:1/db"],
        "the password holds '@': write it as %40",
    ),
    (["--storage", "nonsense"], "--storage nonsense: cannot open"),
    (["--storage", "sqlite:///no/such/dir/optuna.db"], "directory no/such/dir does not exist"),
    (["--data-dir", "damaged"], "damaged/train-images-idx3-ubyte.gz: cannot be read"),
    (["--train-size", "999999"], "--train-size must be at most 59,500"),  # QUICK: 500 to val
    (["--study", ""], "--study must not be empty"),
    (["TRACKED", "--experiment", ""], "--experiment must not be empty"),
    (["TRACKED", "--registered-model", "team/model"], "--registered-model cannot contain '/'"),
    (["TRACKED", "--tracking-uri", "garbage"], "--tracking-uri garbage: not a tracking URI"),
    (["TRACKED", "--tracking-uri", "http://127.0.0.1:1"], "MLflow server not reachable"),
    (
        ["TRACKED", "--tracking-uri", "http://bob:pw-S3cr%2Ft@127.0.0.1:1"],
        "--tracking-uri http://bob:***@127.0.0.1:1: MLflow server not reachable",
    ),
    (
        ["TRACKED", "--tracking-uri", f"http://bob:{SECRET}@127.0.0.1:1"],
        "--tracking-uri http://bob:***@127.0.0.1:1: the password holds '/': write it as %2F",
    ),
    (["--budget", "abc"], "--budget: must be a duration such as 600s, 10m or 1h, got 'abc'"),
    (["--grid", "binary.json"], "--grid binary.json: not a text file (JSON or YAML expected)"),
    (["--grid", "huge.json"], "--grid huge.json: 10,000,000,000 combinations (10x10x10x10"),
    (
        ["--grid", "full_batch.json"],  # QUICK trains on 2,000 images
        "--grid full_batch.json: batch_size 4000 can never run: batch_size 4000 with BatchNorm",
    ),
    (["--storage", "sqlite:///corrupt.db"], "corrupt.db: cannot open: database disk image is"),
    (["--storage", "sqlite:///read_only.db"], "read_only.db is read-only"),
    (["--storage", "sqlite://"], "--storage sqlite://: cannot open: an in-memory SQLite"),
    (["--data-dir", "bad.json"], "data directory bad.json is a file, not a directory"),
    (
        ["--storage", "postgresql://postgres@127.0.0.1:1/x?password=SECRET"],
        "--storage postgresql://postgres@127.0.0.1:1/x?password=***: cannot open",
    ),
    (["--grid", "twice.json"], "--grid twice.json: the key 'lr' appears twice"),
    (["--grid", "twice.yaml"], "--grid twice.yaml: the key 'lr' appears twice"),
]


def bad_files(where: Path) -> None:
    """The files the probes name (but the read-only one: ``read_only``)."""
    (where / "bad.json").write_text("{oops")
    (where / "twice.json").write_text('{"lr": [0.01], "batch_size": [100], "lr": [0.1]}')
    (where / "twice.yaml").write_text("lr: [0.01]\nlr: [0.1]\n")
    (where / "damaged").mkdir()
    for name in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
        (where / "damaged" / f"{name}-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    (where / "binary.json").write_bytes(bytes(range(256)) * 4)
    huge = {k: [0.001 * (i + 1) for i in range(10)] for k in ("lr", "momentum", "dropout")}
    huge |= {k: list(range(1, 11)) for k in ("batch_size", "n_layers", "channels", "head_dim")}
    huge |= {k: list(range(1, 11)) for k in ("hidden_dim", "head_layers", "num_workers")}
    (where / "huge.json").write_text(json.dumps(huge))
    (where / "full_batch.json").write_text('{"batch_size": [4000], "batch_norm": [true]}')
    with sqlite3.connect(where / "corrupt.db") as db:
        db.execute("CREATE TABLE t (x)")
        db.executemany("INSERT INTO t VALUES (?)", [(str(i) * 50,) for i in range(2000)])
    db.close()
    data = bytearray((where / "corrupt.db").read_bytes())
    data[8192:10192] = b"\xff" * 2000  # a damaged page
    (where / "corrupt.db").write_bytes(bytes(data))


def read_only(path: Path) -> Callable[[], None]:
    """An SQLite file nobody may write; returns what undoes it. Root ignores file modes: for
    root it is made immutable (``chattr +i``), or where containers refuse that
    (CAP_LINUX_IMMUTABLE dropped) bind-mounted read-only over itself; only where neither is
    allowed is the one case that needs it skipped."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    if os.geteuid() != 0:
        path.chmod(0o444)
        return lambda: path.chmod(0o644)
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)
    mount = ["mount", "--bind", "-o", "ro", str(path), str(path)]
    if subprocess.run(mount, capture_output=True).returncode == 0:
        return lambda: subprocess.run(["umount", "-l", str(path)], check=True)  # even if open
    pytest.skip("root here can make no file read-only (chattr +i and a read-only bind refused)")


@pytest.mark.parametrize("args, message", PROBES)
def test_bad_input_is_one_line_exit_2_nothing_written(in_tmp, capsys, args, message):
    bad_files(in_tmp)
    undo = read_only(in_tmp / "read_only.db") if "read_only.db" in str(args) else lambda: None
    before = sorted((p.name, p.stat().st_size) for p in in_tmp.iterdir())
    quick = [a for a in QUICK if a != "--no-mlflow"] if args[:1] == ["TRACKED"] else QUICK
    flags = args[1:] if args[:1] == ["TRACKED"] else args
    try:
        code = main([*quick, *flags])  # the probe last: argparse keeps a flag's last value
    finally:
        undo()
    assert code == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and message in err, err
    assert "\n" not in err and "Traceback" not in err and captured.out == ""
    for secret in (SECRET, "SECRET", "p@ss", "ss@", "S3cr"):
        assert secret not in err
    after = sorted((p.name, p.stat().st_size) for p in in_tmp.iterdir())
    assert after == before, "bad input wrote files"


def test_a_study_resumed_with_other_steps_is_refused_naming_its_own(in_tmp, capsys):
    assert main(["--trials", "1", *QUICK]) == 0
    capsys.readouterr()
    before = sorted((p.name, p.stat().st_size) for p in in_tmp.iterdir())
    assert main(["--trials", "2", *QUICK, "--step-images", "250"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --study 'fashion-mnist' was created with --epochs 1 in 2 step")
    assert "asks for --epochs 1 in 8 step(s)" in err and "\n" not in err
    assert len(load("sqlite:///optuna.db", "fashion-mnist").trials) == 1
    assert sorted((p.name, p.stat().st_size) for p in in_tmp.iterdir()) == before


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(in_tmp, capsys):
    assert main(["--device", "cuda", *QUICK]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    tutorial = {"lr": [0.01], "batch_size": [1000], "device": ["cuda", "cpu"]}  # the seed's
    (in_tmp / "tutorial.json").write_text(json.dumps(tutorial))
    assert main(["--grid", "tutorial.json", *QUICK]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: --grid tutorial.json: device 'cuda' can never run: device 'cuda' is not "
        "available here (available: ['cpu'])"
    )
    assert sorted(p.name for p in in_tmp.iterdir()) == ["tutorial.json"]


def test_trials_that_cannot_run_fail_with_the_reason_and_the_study_goes_on(in_tmp, capsys):
    """Ten training images: the warm-start trial (BatchNorm, batch 64) has no full batch."""
    flags = [a for a in QUICK if a != "--no-warm-start"]
    assert main([*flags, "--train-size", "10", "--trials", "3"]) == 0
    trials = load("sqlite:///optuna.db", "fashion-mnist").get_trials()
    assert trials[0].state.name == "FAIL" and trials[0].params["batch_size"] == 64
    assert trials[0].user_attrs["cannot_run"] == (
        "batch_size 64 with BatchNorm leaves no full batch of the 10 training images"
    )
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 3
    assert "Traceback" not in capsys.readouterr().err


def test_grid_sweeps_from_the_seed(in_tmp, capsys):
    (in_tmp / "sweep.json").write_text(
        '{"lr": [0.01], "batch_size": [1000, 2000], "shuffle": [true, false]}'
    )
    assert main(["--grid", "sweep.json", *QUICK]) == 0
    study = load("sqlite:///optuna.db", "fashion-mnist-grid-sweep")
    combos = sorted((t.params["batch_size"], t.params["shuffle"]) for t in study.get_trials())
    assert combos == sorted([(1000, True), (1000, False), (2000, True), (2000, False)])
    assert states(study) == ["COMPLETE"] * 4
    table = json.loads((in_tmp / "fashion-mnist-grid-sweep-runs.json").read_text())
    assert list(table[0]) == [*RUN_MANAGER, "lr", "batch_size", "shuffle"]
    accuracies = [row["accuracy"] for row in table]
    assert accuracies == sorted(accuracies, reverse=True) and len(table) == 4

    (in_tmp / "nets.json").write_text(
        json.dumps(
            {
                "lr": [0.01],
                "batch_size": [1000],
                "shuffle": [True],
                "num_workers": [1],
                "device": ["cpu"],
                "network": ["no_batch_norm", "batch_norm"],
            }
        )
    )
    assert main(["--grid", "nets.json", *QUICK]) == 0
    study = load("sqlite:///optuna.db", "fashion-mnist-grid-nets")
    assert sorted(t.params["network"] for t in study.get_trials()) == [
        "batch_norm",
        "no_batch_norm",
    ]
    assert len(study.get_trials()) == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_marks_the_trial_prints_summary_and_resumes(tmp_path, sig):
    args = ["--trials", "2", *QUICK, *KILLABLE]
    proc = start(args, tmp_path)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    interrupted = kill_mid_trial(proc, storage, "fashion-mnist", sig=sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "study 'fashion-mnist':" in out and "interrupted" in out
    trial = load(storage, "fashion-mnist").get_trials()[interrupted]
    assert trial.state.name == "FAIL", "the running trial was left RUNNING"
    assert main([*args, "--storage", storage]) == 0  # the same command resumes
    trials = load(storage, "fashion-mnist").get_trials()
    finished = [t for t in trials if t.state.is_finished()]
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in finished) == 2
    # An interrupt says nothing against the trial's params: it is retried once, as it was.
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == interrupted]
    assert len(retries) == 1 and retries[0].params == trial.params
