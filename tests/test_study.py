"""search/study.py: pruning, divergence, resuming an interrupted grid."""

from __future__ import annotations

import json
import os
import signal

import optuna
import pytest

from search.run import main
from search.signals import interrupts
from search.storage import FileLock, open_storage
from search.study import StudyPlan, run_trials
from tests.helpers import BAD, GOOD, QUICK, load


def prepared(name: str, trials: list[dict]) -> optuna.Study:
    study = optuna.create_study(
        study_name=name, storage=open_storage("sqlite:///optuna.db"), direction="maximize"
    )
    for params in trials:
        study.enqueue_trial(params)
    return study


def test_median_pruner_prunes_a_bad_region(in_tmp):
    prepared("fashion-mnist", [GOOD] * 5 + [BAD] * 3)
    assert main(["--trials", "8", *QUICK, "--epochs", "2", "--pruner", "median"]) == 0
    trials = load("sqlite:///optuna.db", "fashion-mnist").get_trials()
    assert [t.state.name for t in trials[:5]] == ["COMPLETE"] * 5
    assert all(len(t.intermediate_values) == 4 for t in trials[:5])  # 2 epochs, 2 steps each
    pruned = [t for t in trials[5:] if t.state.name == "PRUNED"]
    assert len(pruned) == 3 and all(len(t.intermediate_values) < 3 for t in pruned)


def test_diverging_trial_is_pruned_with_reason_and_study_goes_on(in_tmp):
    prepared("fashion-mnist", [{**GOOD, "optimizer": "sgd", "momentum": 0.9, "lr": 1e4}, GOOD])
    assert main(["--trials", "2", "--pruner", "none", *QUICK]) == 0
    first, second = load("sqlite:///optuna.db", "fashion-mnist").get_trials()
    assert first.state.name == "PRUNED" and "training loss became" in first.user_attrs["diverged"]
    assert second.state.name == "COMPLETE"


def test_interrupted_grid_resumes_only_the_rest(in_tmp):
    (in_tmp / "g.json").write_text(json.dumps({"batch_size": [500, 1000, 2000]}))
    assert main(["--grid", "g.json", "--trials", "1", *QUICK]) == 0  # stopped after one run
    assert main(["--grid", "g.json", *QUICK]) == 0
    trials = load("sqlite:///optuna.db", "fashion-mnist-grid-g").get_trials()
    assert sorted(t.params["batch_size"] for t in trials) == [500, 1000, 2000]
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert main(["--grid", "g.json", *QUICK]) == 0  # a finished grid adds nothing
    assert len(load("sqlite:///optuna.db", "fashion-mnist-grid-g").get_trials()) == 3


def test_a_worker_stops_when_trial_after_trial_cannot_run(tmp_path):
    """Configurations that cannot run end FAIL and the study goes on, but not forever."""
    from search.feasible import CannotRun
    from search.storage import FileLock
    from search.study import CANNOT_RUN_STREAK, Ended, Stop, StudyPlan, run_trials

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0, 1)
        trial.set_user_attr("cannot_run", "no full batch")
        raise CannotRun("no full batch")

    study = optuna.create_study()
    lock = FileLock(tmp_path / "lock")
    stopped = run_trials(study, objective, StudyPlan(target=5), lock)
    assert stopped == Stop(Ended.CANNOT_RUN, "no full batch")
    assert [t.state.name for t in study.trials] == ["FAIL"] * CANNOT_RUN_STREAK


def test_a_study_names_its_value_and_says_what_a_step_is_also_when_older():
    from search.config import StudyConfig
    from search.study import METRIC, open_study, study_settings

    storage = optuna.storages.InMemoryStorage()
    older = optuna.create_study(study_name="old", storage=storage, direction="maximize")
    assert older.metric_names is None  # as an earlier release created it
    config = StudyConfig(name="old", warm_start=False)
    settings = study_settings(config, epochs=1, steps=10, images=50_000, space="cpu")
    study = open_study(config, storage, settings)
    assert study.metric_names == [METRIC] == ["val_accuracy"]
    assert study.user_attrs["step_images"] == 5_000
    assert study.user_attrs["step"].startswith("one step = 5,000 training images")
    grid = study_settings(StudyConfig(grid="g.json"), epochs=3, steps=3, images=2000, space="cpu")
    assert grid["step"].startswith("one step = training epoch") and grid["mode"] == "grid"


class SignalledStorage(optuna.storages.InMemoryStorage):
    """A real storage that gets SIGTERM as it begins each of the ``writes`` named (Python runs
    the handler at the next line): ``create_new_trial`` (the claim, and queueing a trial
    again), ``set_trial_state_values`` (Optuna recording a trial's end)."""

    def __init__(self, *writes: str) -> None:
        super().__init__()
        self.writes = writes

    def _signalled(self, write: str) -> None:
        if write in self.writes:
            os.kill(os.getpid(), signal.SIGTERM)

    def create_new_trial(self, study_id, template_trial=None):
        self._signalled("create_new_trial")
        return super().create_new_trial(study_id, template_trial)

    def set_trial_state_values(self, trial_id, state, values=None):
        self._signalled("set_trial_state_values")
        return super().set_trial_state_values(trial_id, state, values)


def interrupted(storage: SignalledStorage, objective, tmp_path) -> optuna.Study:
    """The study after ``run_trials`` on ``storage`` stopped with KeyboardInterrupt, SIGTERM
    handled as a run handles it (``search.signals.interrupts``)."""
    study = optuna.create_study(storage=storage)
    with interrupts(), pytest.raises(KeyboardInterrupt):
        run_trials(study, objective, StudyPlan(target=3), FileLock(tmp_path / "lock"))
    return study


def test_a_signal_while_optuna_records_a_trials_end_waits_for_it(tmp_path):
    """SIGTERM (which a run turns into KeyboardInterrupt) landing inside Optuna's tell: the
    trial's end is recorded, then the interrupt is raised, not Optuna's UnboundLocalError
    from the half-run ``finally`` (a Slurm ``scancel`` in the suite once met it there)."""

    def objective(trial: optuna.Trial) -> float:
        return trial.suggest_float("x", 0, 1)

    study = interrupted(SignalledStorage("set_trial_state_values"), objective, tmp_path)
    assert [t.state.name for t in study.trials] == ["COMPLETE"]


def test_a_signal_held_by_the_claim_then_sent_again_leaves_the_trial_failed_and_queued(tmp_path):
    """A worker whose supervisor dies as it claims a trial: the kernel's SIGTERM, held by the
    claim lock, is raised as the lock goes, and the supervisor's watch sends it again while
    Optuna records the trial's end and while the trial is queued again. The trial ends FAIL,
    queued once, none left RUNNING (the suite once found one after a killed supervisor)."""

    def objective(trial: optuna.Trial) -> float:
        raise AssertionError("the signal came before the objective could start")

    storage = SignalledStorage("create_new_trial", "set_trial_state_values")
    study = interrupted(storage, objective, tmp_path)
    assert [t.state.name for t in study.trials] == ["FAIL", "WAITING"]
