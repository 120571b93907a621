"""The search space: one vocabulary for Optuna params, MLflow params, configs and CLI/grid keys.

| param          | range                                   | when                 |
| -------------- | --------------------------------------- | -------------------- |
| `lr`           | log-uniform 3e-4 .. 2e-1                | always               |
| `batch_size`   | 64, 128, 256 (cuda: 256, 512)           | always               |
| `optimizer`    | sgd, adam, adamw                        | always               |
| `momentum`     | uniform 0.8 .. 0.99                     | optimizer == sgd     |
| `weight_decay` | log-uniform 1e-6 .. 1e-1                | always               |
| `schedule`     | onecycle, cosine (constant: grid only)  | always               |
| `arch`         | cnn (mlp: grid mode only)               | always               |
| `n_layers`     | 1 .. 3 conv blocks                      | always               |
| `batch_norm`   | False, True                             | always               |
| `dropout`      | uniform 0.0 .. 0.5                      | always               |
| `channels`     | 16, 24, 32 (cuda: 32, 48, 64), doubling | always               |
| `head_dim`     | 128, 256, 512                           | always               |
| `head_layers`  | 1, 2                                    | always               |

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

from dataclasses import dataclass
from typing import Any

import optuna

from models import CNNConfig, MLPConfig, ModelConfig, ResNetConfig, SeedNetConfig
from search.train import TrainConfig

ARCHS = ("mlp", "cnn", "resnet")  # every family a grid may name
SEARCH_OPTIMIZERS = ("sgd", "adam", "adamw")
BATCH_SIZES = (64, 128, 256)
CHANNELS = (16, 24, 32)
HEAD_DIMS = (128, 256, 512)
HEAD_LAYERS = (1, 2)

SEARCH_SCHEDULES = ("onecycle", "cosine")
# Up to 0.1: AdamW's decoupled decay works at 0.01-0.1 (the recipe's 0.05); SGD's and Adam's
# coupled decay wants 1e-5..1e-3, which TPE learns from the trials.
WEIGHT_DECAY = (1e-6, 1e-1)

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


# On a GPU, batches of 64 are launch-bound (about 17,000 images/s on an H100 whatever the
# setting) while batches of 1024 train at 250,000: there, larger batches and wider networks cost
# the same seconds (README, Measured). The CPU sizes are the measured ones above.
DEVICE_BATCH_SIZES = {"cpu": BATCH_SIZES, "cuda": (256, 512)}
DEVICE_CHANNELS = {"cpu": CHANNELS, "cuda": (32, 48, 64)}
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
    p: dict[str, Any] = {
        "lr": trial.suggest_float("lr", 3e-4, 2e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", DEVICE_BATCH_SIZES[space]),
        "optimizer": trial.suggest_categorical("optimizer", SEARCH_OPTIMIZERS),
    }
    if p["optimizer"] == "sgd":
        p["momentum"] = trial.suggest_float("momentum", 0.8, 0.99)
    p["weight_decay"] = trial.suggest_float("weight_decay", *WEIGHT_DECAY, log=True)
    p["schedule"] = trial.suggest_categorical("schedule", SEARCH_SCHEDULES)
    p["arch"] = trial.suggest_categorical("arch", ("cnn",))
    p["n_layers"] = trial.suggest_int("n_layers", 1, 3)
    p["batch_norm"] = trial.suggest_categorical("batch_norm", (False, True))
    p["dropout"] = trial.suggest_float("dropout", 0.0, 0.5)
    p["channels"] = trial.suggest_categorical("channels", DEVICE_CHANNELS[space])
    p["head_dim"] = trial.suggest_categorical("head_dim", HEAD_DIMS)
    p["head_layers"] = trial.suggest_categorical("head_layers", HEAD_LAYERS)
    return p


def model_config(params: dict[str, Any]) -> ModelConfig:
    if "network" in params:
        return SeedNetConfig(params["network"])
    if params.get("arch", "cnn") == "mlp":
        keys = ("n_layers", "batch_norm", "dropout", "hidden_dim")
        return MLPConfig(**{k: params[k] for k in keys if k in params})
    if params.get("arch") == "resnet":  # BatchNorm always; no head beyond the classifier
        keys = ("n_layers", "channels", "dropout")
        return ResNetConfig(**{k: params[k] for k in keys if k in params})
    keys = ("n_layers", "batch_norm", "dropout", "channels", "head_dim", "head_layers")
    return CNNConfig(**{k: params[k] for k in keys if k in params})


def spec_from_params(
    params: dict[str, Any], epochs: int, seed: int, steps: int | None = None
) -> TrialSpec:
    """Model and training configs from a flat params dict; missing keys take config defaults."""
    keys = (
        "optimizer",
        "lr",
        "momentum",
        "weight_decay",
        "batch_size",
        "shuffle",
        "schedule",
        "augment",
        "label_smoothing",
    )
    model = model_config(params)
    # BatchNorm cannot train on a final batch of one image: drop the partial batch instead.
    drop_last = (
        getattr(model, "batch_norm", False) or getattr(model, "network", "") == "batch_norm"
    )
    given = {k: params[k] for k in keys if k in params}
    train = TrainConfig(epochs=epochs, seed=seed, drop_last=drop_last, steps=steps, **given)
    return TrialSpec(model=model, train=train)
