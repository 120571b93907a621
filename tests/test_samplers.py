"""search/samplers.py: where the default pruner judges a trial of the default study's 10 steps."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from search.samplers import PRUNERS, make_pruner

STEPS = 10  # the default study: one epoch of 50,000 images in steps of 5,000


def pruned_at(study: optuna.Study, values: list[float]) -> int | None:
    """Report ``values`` step by step; the step the pruner stopped the trial at, or ``None``."""
    trial = study.ask()
    for step, value in enumerate(values, start=1):
        trial.report(value, step)
        if trial.should_prune():
            study.tell(trial, state=TrialState.PRUNED)
            return step
    study.tell(trial, values[-1])
    return None


@pytest.fixture
def study() -> optuna.Study:
    """Four trials good at every step: the rungs' competition."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    made = optuna.create_study(
        direction="maximize", pruner=make_pruner("successive-halving", STEPS)
    )
    for _ in range(4):
        assert pruned_at(made, [0.9] * STEPS) is None
    return made


def test_a_trial_bad_from_the_start_is_stopped_after_its_first_step(study):
    assert pruned_at(study, [0.5] * STEPS) == 1


def test_a_trial_that_falls_behind_by_step_4_is_stopped_there(study):
    assert pruned_at(study, [0.9] * 3 + [0.5] * 7) == 4


def test_a_trial_past_step_4_is_never_judged_again(study):
    """Rungs at 1 and 4 only: a trial that got past step 4 trains its last steps and completes
    (with rungs at 1, 3 and 9 it was judged again at step 9, after 90% of its training)."""
    assert pruned_at(study, [0.9] * 8 + [0.5] * 2) is None


def test_every_pruner_named_on_the_command_line_is_built():
    for name in PRUNERS:
        assert isinstance(make_pruner(name, STEPS), optuna.pruners.BasePruner)
    with pytest.raises(ValueError, match="--pruner must be one of"):
        make_pruner("wizard", STEPS)
