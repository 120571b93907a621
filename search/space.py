"""The search space: what a trial samples, the warm start, and params into configs.

The parameters themselves (names, ranges, when each applies, what a grid may give them) are
one table, ``search.params.PARAMS``; docs/search.md shows it. ``suggest_params`` samples it.

Sized from measurements on 2 CPU cores (docs/measured.md): the seed article's CNN (3 blocks to
128 channels, a 512-wide two-layer head) is the most expensive point, so a study's cost is
bounded by it; MLPs, batches of 32 and above 256, and rmsprop never won there. A fixed
learning rate looks best after one epoch but loses after the final fit's longer training
(the article's CNN, 5 epochs: fixed 0.9194, one-cycle 0.9278, cosine 0.9300 test), so trials
always anneal. ``WARM_START`` is the article's network on the strongest fixed recipe known
for it (``RECIPE``: AdamW, cosine), enqueued as the first trial of every new search-mode
study, so the incumbent is never worse than what a user would train instead of searching.
``spec_from_params`` turns a flat params dict (sampled, fixed by a grid, or read back from the
storage) into the model and training configs, so the same words mean the same thing in every
place.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import optuna

from models import CNNConfig, MLPConfig, ModelConfig, ResNetConfig, SeedNetConfig
from search.params import names, sample
from search.train import TrainConfig

# The seed article's hand-tuned network, in this vocabulary: 3 conv blocks 32/64/128 with
# BatchNorm, fc 1152-512-512 with BatchNorm1d and dropout 0.4.
ARTICLE_NET: dict[str, Any] = {
    "arch": "cnn",
    "n_layers": 3,
    "batch_norm": True,
    "dropout": 0.4,
    "channels": 32,
    "head_dim": 512,
    "head_layers": 2,
}
# The article exactly, as the baseline trains it: SGD at a fixed rate, no weight decay (not a
# point of the search space, which always anneals).
ARTICLE: dict[str, Any] = {
    **ARTICLE_NET,
    "lr": 0.01,
    "batch_size": 64,
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 0.0,
    "schedule": "constant",
}
# The strongest fixed recipe known for the article's network (benchmarks.recipes, 5 epochs:
# 0.9323 test accuracy against 0.9304 one-cycle SGD and 0.9151 as the article trained it). It
# is the warm start: a new search-mode study's first trial, so the incumbent is never worse
# than the recipe a user would train instead of searching.
RECIPE: dict[str, Any] = {
    **ARTICLE_NET,
    "lr": 3e-3,
    "batch_size": 64,
    "optimizer": "adamw",
    "weight_decay": 0.05,
    "schedule": "cosine",
}
WARM_START = RECIPE
WARM_START_NOTE = "the article's CNN on the strongest fixed recipe (AdamW, cosine)"


# On a GPU the article's CNN at 4x the batch and 4x the SGD rate (linear scaling; measured on
# an H100 with the GPU space, README history: 0.9325 in 80 s). Not yet measured with AdamW.
GPU_WARM_START = {
    **ARTICLE_NET,
    "lr": 0.04,
    "batch_size": 256,
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 1e-6,
    "schedule": "cosine",
}
DEVICE_WARM_START = {"cpu": WARM_START, "cuda": GPU_WARM_START}


def space_name(device_type: str) -> str:
    """The space for a device: 'cuda' on a GPU, else the CPU's (mps included)."""
    return "cuda" if device_type == "cuda" else "cpu"


@dataclass(frozen=True)
class TrialSpec:
    model: ModelConfig
    train: TrainConfig


def suggest_params(trial: optuna.Trial, space: str = "cpu") -> dict[str, Any]:
    """Sample one point of the space (``space``: 'cpu' or 'cuda', recorded on the study);
    conditional params are only asked for when they apply."""
    return sample(trial, space)


def full_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The trial's params, plus those a grid fixed (its ``fixed_params``: no Optuna params)."""
    return {**trial.user_attrs.get("fixed_params", {}), **trial.params}


FAMILIES = {"mlp": MLPConfig, "cnn": CNNConfig, "resnet": ResNetConfig}


def model_config(given: dict[str, Any]) -> ModelConfig:
    """The model's config: the seeded ``network`` a grid names, else the ``arch`` family (cnn
    by default) with the params it has fields for (the rest of the model's words do not apply
    to it: a residual net has no ``head_dim``)."""
    if "network" in given:
        return SeedNetConfig(given["network"])
    family = FAMILIES[given.get("arch", "cnn")]
    return family(**{f.name: given[f.name] for f in fields(family) if f.name in given})


def spec_from_params(
    params: dict[str, Any], epochs: int, seed: int, steps: int | None = None
) -> TrialSpec:
    """Model and training configs from a flat params dict; missing keys take config defaults."""
    model = model_config(params)
    # BatchNorm cannot train on a final batch of one image: drop the partial batch instead.
    drop_last = (
        getattr(model, "batch_norm", False) or getattr(model, "network", "") == "batch_norm"
    )
    given = {k: params[k] for k in names("train") if k in params}
    train = TrainConfig(epochs=epochs, seed=seed, drop_last=drop_last, steps=steps, **given)
    return TrialSpec(model=model, train=train)
