"""search/winner.py: the top trials re-run on another seed, the best mean chosen, all recorded."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from search.budget import Budget
from search.space import spec_from_params
from search.winner import (
    MIN_FINAL_EPOCHS,
    Candidate,
    Choice,
    Reruns,
    choose,
    rerun,
    rerun_seed,
    top_trials,
)

TINY = {
    "lr": 3e-3,
    "batch_size": 100,
    "optimizer": "adam",
    "arch": "cnn",
    "n_layers": 1,
    "channels": 4,
    "head_dim": 16,
    "batch_norm": False,
}


def study_of(values: list[float], reruns: dict | None = None) -> optuna.Study:
    """An in-memory study of complete trials with these values (each trained in 0.2 s)."""
    study = optuna.create_study(direction="maximize")
    for i, value in enumerate(values):
        study.add_trial(
            create_trial(
                value=value,
                params={"lr": 1e-3 * (i + 1)},
                distributions={"lr": FloatDistribution(1e-4, 1.0, log=True)},
                user_attrs={"train_seconds": 0.2},
            )
        )
    if reruns is not None:
        study.set_user_attr("reruns", reruns)
    return study


class Recorder:
    def __init__(self) -> None:
        self.started: list[int] = []
        self.reruns: list[tuple[int, int, float]] = []

    def start(self, trial) -> None:
        self.started.append(trial.number)

    def done(self, trial, seed: int, value: float, seconds: float) -> None:
        self.reruns.append((trial.number, seed, value))


def reruns_of(splits, budget: Budget | None = None, recorder: Recorder | None = None) -> Reruns:
    recorder = recorder or Recorder()
    return Reruns(
        spec_of=lambda t: spec_from_params({**TINY, "lr": t.params["lr"]}, epochs=1, seed=7),
        splits=splits,
        seed=0,
        budget=budget or Budget(None),
        on_start=recorder.start,
        on_rerun=recorder.done,
    )


def test_top_trials_are_the_best_complete_ones_earliest_first_on_ties():
    study = study_of([0.80, 0.90, 0.85, 0.90])
    assert [t.number for t in top_trials(study, 3)] == [1, 3, 2]
    assert top_trials(optuna.create_study(), 3) == []


def test_the_top_k_are_re_run_once_recorded_and_a_resume_does_not_re_run_them(small_splits):
    study = study_of([0.5, 0.6, 0.7, 0.4])
    recorder = Recorder()
    choice = choose(study, 3, reruns_of(small_splits, recorder=recorder))
    assert recorder.started == [2, 1, 0]  # best first, the fourth is not re-run
    assert [(n, s) for n, s, _ in recorder.reruns] == [(n, rerun_seed(0, n, 1)) for n in (2, 1, 0)]
    recorded = study.user_attrs["reruns"]
    assert sorted(recorded) == ["0", "1", "2"] and all(len(v) == 1 for v in recorded.values())
    assert study.user_attrs["winner"]["trial"] == choice.winner.number
    assert study.user_attrs["winner"]["runs"] == 2
    winner = choice.winner
    assert winner.values[1] == recorded[str(winner.number)][0]
    assert winner.mean == max(c.mean for c in (winner, *choice.others))
    again = Recorder()
    assert choose(study, 3, reruns_of(small_splits, recorder=again)).winner == winner
    assert again.reruns == []


def test_the_best_mean_wins_over_the_best_single_run():
    """Trial 0 was lucky once: its re-run says so, and trial 1 wins on the mean."""
    study = study_of([0.92, 0.91, 0.80], reruns={"0": [0.88], "1": [0.912], "2": [0.8]})
    choice = choose(study, 3, reruns_of(None))
    assert choice.winner.number == 1 and [c.number for c in choice.others] == [0, 2]
    assert choice.line() == "trial #1 chosen over #0 and #2 (val 0.9110 +- 0.0014 over 2 runs)"


def test_no_re_runs_means_the_best_trial_and_an_unknown_noise():
    choice = choose(study_of([0.7, 0.9]), 0, reruns_of(None))
    assert choice.winner == Candidate(1, (0.9,)) and choice.others == ()
    assert choice.line() == (
        "trial #1 chosen, the only one compared (val 0.9000 on 1 run: its noise is unknown)"
    )
    assert choose(optuna.create_study(), 3, reruns_of(None)) is None


def test_the_only_complete_trial_wins_unopposed_and_is_not_re_run(small_splits):
    recorder = Recorder()
    choice = choose(study_of([0.9]), 3, reruns_of(small_splits, recorder=recorder))
    assert recorder.started == [] and choice.winner == Candidate(0, (0.9,))
    assert choice.line() == "trial #0, the only complete trial (val 0.9000, not re-run)"
    two = choose(study_of([0.9, 0.8]), 1, reruns_of(small_splits, recorder=recorder))
    assert recorder.started == [0] and len(two.winner.values) == 2  # --reruns 1 still re-runs


def test_a_budget_without_room_skips_the_re_runs_and_says_so():
    budget = Budget(10.0)
    budget.reserve = 10.0  # all of it kept for the final fit
    recorder = Recorder()
    choice = choose(study_of([0.9, 0.8]), 3, reruns_of(None, budget, recorder))
    assert recorder.started == [] and choice.skipped == 2
    assert choice.winner.number == 0
    assert "no time left to re-run it" in choice.line()


def test_a_re_run_is_the_trial_again_on_its_own_seed(small_splits):
    spec = spec_from_params(TINY, epochs=1, seed=3)
    assert rerun(spec, small_splits, 11) == rerun(spec, small_splits, 11)  # deterministic
    assert rerun(spec, small_splits, 11) != rerun(spec, small_splits, 12)
    assert 0.3 < rerun(spec, small_splits, 11) <= 1.0


def test_choice_lines_name_every_runner_up():
    three = Choice(Candidate(4, (0.9, 0.8)), (Candidate(2, (0.8,)), Candidate(7, (0.7,))))
    assert three.line().startswith("trial #4 chosen over #2 and #7 (val 0.8500 +- 0.0707")
    two = Choice(Candidate(4, (0.9, 0.9)), (Candidate(2, (0.8, 0.8)),))
    assert two.line() == "trial #4 chosen over #2 (val 0.9000 +- 0.0000 over 2 runs)"
    assert two.record() == {"trial": 4, "mean": 0.9, "spread": 0.0, "runs": 2, "over": [2]}
    many = Choice(Candidate(1, (0.9,)), tuple(Candidate(n, (0.8,)) for n in (2, 5, 7)))
    assert many.line().startswith("trial #1 chosen over #2, #5 and #7 (")


def test_under_a_budget_a_configuration_too_slow_to_fit_long_cannot_win():
    study = study_of([0.95, 0.90, 0.85])
    epochs = {0: MIN_FINAL_EPOCHS - 1, 1: MIN_FINAL_EPOCHS, 2: 50}  # trial 0: too slow

    def what_fits(trial) -> int:
        return epochs[trial.number]

    how = reruns_of(None)
    how.final_epochs = what_fits
    assert [t.number for t in top_trials(study, 3, what_fits)] == [1, 2]
    assert (
        choose(study_of([0.95, 0.90, 0.85], {"1": [0.9], "2": [0.85]}), 3, how).winner.number == 1
    )
    assert [t.number for t in top_trials(study, 3, lambda t: 0)] == [0, 1, 2]  # none: all
