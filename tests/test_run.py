"""search/run.py end to end: the CLI on the real data, in-process and as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from search.run import main
from search.space import WARM_START
from tests.conftest import QUICK
from tests.helpers import kill_mid_trial, load, start, states

ROOT = Path(__file__).resolve().parents[1]


def test_three_trials_then_resume_adds_two(in_tmp, capsys):
    assert main(["--trials", "3", *QUICK]) == 0
    study = load("sqlite:///optuna.db", "fashion-mnist")
    finished = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3
    for t in finished:
        assert t.intermediate_values, f"trial {t.number} reported no epoch"
        assert {"n_parameters", "device", "step_seconds", "history"} <= t.user_attrs.keys()
    out = capsys.readouterr().out
    assert "best trial #" in out and "test_accuracy" in out and "optuna-dashboard" in out
    rows = json.loads((in_tmp / "fashion-mnist-trials.json").read_text())
    assert len(rows) == 3 and (in_tmp / "fashion-mnist-trials.csv").exists()

    assert main(["--trials", "5", *QUICK]) == 0
    study = load("sqlite:///optuna.db", "fashion-mnist")
    assert len(study.get_trials()) == 5
    first_params = [t.params for t in study.get_trials()[:3]]
    assert all(t.params not in first_params for t in study.get_trials()[3:]), "resume resampled"


def test_a_new_study_starts_with_the_article_cnn_and_reports_sub_epoch_steps(in_tmp):
    quick = [a for a in QUICK if a != "--no-warm-start"]
    assert main(["--trials", "2", *quick, "--step-images", "500"]) == 0
    first, second = load("sqlite:///optuna.db", "fashion-mnist").get_trials()
    assert first.params == WARM_START and first.user_attrs["warm_start"]
    assert second.params != WARM_START
    for trial in (first, second):
        steps = sorted(trial.intermediate_values)
        assert steps == list(range(1, len(steps) + 1)) and len(steps) <= 4  # 2,000 / 500
        epochs = [h["epoch"] for h in trial.user_attrs["history"]]
        assert epochs == pytest.approx([0.25, 0.5, 0.75, 1.0][: len(steps)], abs=0.02)
    assert len(first.intermediate_values) == 4  # the first trial is never pruned
    assert main(["--trials", "3", *quick]) == 0  # a resumed study is not warm-started again
    trials = load("sqlite:///optuna.db", "fashion-mnist").get_trials()
    assert sum(t.params == WARM_START for t in trials) == 1


def test_final_fit_trains_the_best_configuration_on_train_and_validation(in_tmp, capsys):
    assert main(["--trials", "2", *QUICK, "--final-epochs", "1"]) == 0
    out = capsys.readouterr().out
    study = load("sqlite:///optuna.db", "fashion-mnist")
    best = study.best_trial.number
    assert f"final fit of trial #{best}: 1 epochs on train + validation" in out
    assert study.user_attrs["test_accuracy"]["trial"] == best
    assert "ended by --trials 2" in out


def test_subprocess_help_and_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    helped = subprocess.run([sys.executable, "-m", "search.run", "--help"], capture_output=True,
                            text=True, env=env, check=True)  # fmt: skip
    for flag in ("--trials", "--storage", "--sampler", "--grid", "--pruner", "--train-size",
                 "--budget", "--final-epochs", "--step-images", "--no-warm-start"):  # fmt: skip
        assert flag in helped.stdout
    done = subprocess.run(
        [sys.executable, "-m", "search.run", "--trials", "1", *QUICK],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1 complete" in done.stdout
    assert (tmp_path / "optuna.db").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--trials", "0"], "--trials: must be a positive integer, got '0'"),
        (["--trials", "-3"], "--trials: must be a positive integer"),
        (["--sampler", "anneal"], "--sampler: invalid choice: 'anneal'"),
        (["--pruner", "wizard"], "--pruner: invalid choice: 'wizard'"),
        (["--sampler", "grid"], "--sampler grid needs --grid FILE"),
        (["--grid", "missing.json"], "--grid missing.json: cannot be read"),
        (["--grid", "bad.json"], "--grid bad.json: not valid json"),
        (["--device", "tpu"], "--device must be one of auto, cpu, cuda, mps, got 'tpu'"),
        (["--storage", "postgresql://u:pw@127.0.0.1:1/x"], "--storage postgresql://u:***@"),
        (["--storage", "nonsense"], "--storage nonsense: cannot open"),
        (["--data-dir", "damaged"], "damaged/train-images-idx3-ubyte.gz: cannot be read"),
        (["--budget", "0"], "--budget: must be a positive duration, got '0'"),
        (["--budget", "abc"], "--budget: must be a duration such as 600s, 10m or 1h, got 'abc'"),
        (["--budget", "10 minutes"], "--budget: must be a duration such as 600s, 10m or 1h"),
        (["--final-epochs", "-1"], "--final-epochs: must be an integer >= 0, got '-1'"),
        (["--step-images", "0"], "--step-images: must be a positive integer, got '0'"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(in_tmp, capsys, args, message):
    (in_tmp / "bad.json").write_text("{oops")
    (in_tmp / "damaged").mkdir()
    for name in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
        (in_tmp / "damaged" / f"{name}-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    before = sorted(p.name for p in in_tmp.iterdir())
    assert main([*args, *QUICK]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err, err
    assert "\n" not in err and "pw" not in err
    assert sorted(p.name for p in in_tmp.iterdir()) == before, "bad input wrote files"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(in_tmp, capsys):
    assert main(["--device", "cuda", *QUICK]) == 2
    assert "no CUDA device" in capsys.readouterr().err


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
    assert list(table[0]) == ["run", "epoch", "loss", "accuracy", "epoch duration",
                              "run duration", "lr", "batch_size", "shuffle"]  # fmt: skip
    accuracies = [row["accuracy"] for row in table]
    assert accuracies == sorted(accuracies, reverse=True) and len(table) == 4

    (in_tmp / "nets.json").write_text(json.dumps({
        "lr": [0.01], "batch_size": [1000], "shuffle": [True], "num_workers": [1],
        "device": ["cpu"], "network": ["no_batch_norm", "batch_norm"]}))  # fmt: skip
    assert main(["--grid", "nets.json", *QUICK]) == 0
    study = load("sqlite:///optuna.db", "fashion-mnist-grid-nets")
    assert sorted(t.params["network"] for t in study.get_trials()) == [
        "batch_norm",
        "no_batch_norm",
    ]
    assert len(study.get_trials()) == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_marks_the_trial_prints_summary_and_resumes(tmp_path, sig):
    args = ["--trials", "2", "--epochs", "3", *QUICK[2:]]  # QUICK minus its --epochs 1
    proc = start(args, tmp_path)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    interrupted = kill_mid_trial(proc, storage, "fashion-mnist", sig=sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "study 'fashion-mnist':" in out and "interrupted" in out
    trial = load(storage, "fashion-mnist").get_trials()[interrupted]
    assert trial.state.name == "FAIL", "the running trial was left RUNNING"
    assert main(["--trials", "2", "--storage", storage, *QUICK]) == 0
    finished = [t for t in load(storage, "fashion-mnist").get_trials() if t.state.is_finished()]
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in finished) == 2
