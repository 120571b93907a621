"""search/recipe.py: regularizers switch on with a run's length; a configuration's own stay."""

from __future__ import annotations

from search import recipe
from search.champion import final_spec, recipe_words
from search.space import WARM_START


def test_short_runs_train_plain_and_long_ones_regularized():
    short = recipe.by_length(recipe.AUGMENT_FROM - 1)
    assert short["augment"] is False
    assert recipe.by_length(recipe.AUGMENT_FROM)["augment"] is True
    assert recipe.by_length(recipe.SMOOTH_FROM - 1)["label_smoothing"] == 0.0
    assert recipe.by_length(recipe.SMOOTH_FROM)["label_smoothing"] == recipe.LABEL_SMOOTHING


def test_crop_and_flip_are_priced_per_image_on_this_machine(small_splits):
    seconds = recipe.augment_seconds(small_splits.train[0], 64)
    assert 0 < seconds < 0.01  # microseconds an image, on any machine that trains at all


def test_a_configuration_that_names_a_regularizer_keeps_it():
    long = max(recipe.AUGMENT_FROM, recipe.SMOOTH_FROM)
    kept = recipe.with_length({"augment": False, "lr": 0.1}, long)
    assert kept["augment"] is False and kept["lr"] == 0.1
    assert kept["label_smoothing"] == recipe.LABEL_SMOOTHING


def test_the_final_fit_trains_with_the_regularizers_of_its_length():
    import optuna

    trial = optuna.trial.create_trial(
        value=0.9,
        params={},
        distributions={},
        user_attrs={"fixed_params": WARM_START},
    )
    long = max(recipe.AUGMENT_FROM, recipe.SMOOTH_FROM)
    spec = final_spec(trial, long, seed=5)
    assert spec.train.epochs == long and spec.train.steps is None
    assert spec.train.augment and spec.train.label_smoothing == recipe.LABEL_SMOOTHING
    assert spec.train.seed == 5 + trial.number
    assert recipe_words(spec) == f", with crop/flip and label smoothing {recipe.LABEL_SMOOTHING:g}"
    plain = final_spec(trial, 1, seed=5)
    assert not plain.train.augment and plain.train.label_smoothing == 0.0
    assert recipe_words(plain) == ""
