"""search/figures.py: Optuna's plots page (importances only once they mean something)."""

from __future__ import annotations

import optuna

from search.figures import IMPORTANCE_TRIALS, optuna_html


def study_of(complete: int) -> optuna.Study:
    """An in-memory study of ``complete`` trials over three parameters, each with steps."""
    study = optuna.create_study(study_name="plots", direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        n_layers = trial.suggest_int("n_layers", 1, 4)
        trial.suggest_categorical("optimizer", ["sgd", "adam"])
        for step in range(1, 4):
            trial.report(lr * step, step)
        return lr + n_layers

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study.optimize(objective, n_trials=complete)
    return study


def test_a_young_study_gets_its_plots_and_a_note_instead_of_importances():
    page, drawn = optuna_html(study_of(IMPORTANCE_TRIALS - 1))
    assert drawn == ["optimization history", "parallel coordinates", "intermediate values"]
    assert f"({IMPORTANCE_TRIALS - 1} so far)" in page and page.count("<script") >= 3


def test_importances_are_drawn_from_enough_complete_trials():
    page, drawn = optuna_html(study_of(IMPORTANCE_TRIALS))
    assert "parameter importances" in drawn and "so far" not in page
