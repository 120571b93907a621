"""The search space: one vocabulary for Optuna params, MLflow params, configs and CLI/grid keys.

| param          | range                                   | when                 |
| -------------- | --------------------------------------- | -------------------- |
| `lr`           | log-uniform 1e-5 .. 1e-1                | always               |
| `batch_size`   | 32, 64, 128, 256, 512, 1024             | always               |
| `optimizer`    | sgd, adam, adamw, rmsprop               | always               |
| `momentum`     | uniform 0.0 .. 0.99                     | optimizer == sgd     |
| `weight_decay` | log-uniform 1e-6 .. 1e-2                | always               |
| `arch`         | mlp, cnn                                | always               |
| `n_layers`     | 1 .. 3                                  | always               |
| `batch_norm`   | False, True                             | always               |
| `dropout`      | uniform 0.0 .. 0.5                      | always               |
| `hidden_dim`   | 64, 128, 256, 512                       | arch == mlp          |
| `channels`     | 8, 16, 32                               | arch == cnn          |

Ranges are sized for a CPU: a 3-block CNN at 32 channels already costs ~30 s per epoch on
two cores. ``spec_from_params`` turns a flat params dict (sampled, fixed by a grid, or read back
from the storage) into the model and training configs, so the same words mean the same thing
in every place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from models import CNNConfig, MLPConfig, ModelConfig, SeedNetConfig
from search.train import OPTIMIZERS, TrainConfig

BATCH_SIZES = (32, 64, 128, 256, 512, 1024)
ARCHS = ("mlp", "cnn")
HIDDEN_DIMS = (64, 128, 256, 512)
CHANNELS = (8, 16, 32)


@dataclass(frozen=True)
class TrialSpec:
    model: ModelConfig
    train: TrainConfig


def suggest_params(trial: optuna.Trial) -> dict[str, Any]:
    """Sample one point of the space; conditional params are only asked for when they apply."""
    p: dict[str, Any] = {
        "lr": trial.suggest_float("lr", 1e-5, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", BATCH_SIZES),
        "optimizer": trial.suggest_categorical("optimizer", OPTIMIZERS),
    }
    if p["optimizer"] == "sgd":
        p["momentum"] = trial.suggest_float("momentum", 0.0, 0.99)
    p["weight_decay"] = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    p["arch"] = trial.suggest_categorical("arch", ARCHS)
    p["n_layers"] = trial.suggest_int("n_layers", 1, 3)
    p["batch_norm"] = trial.suggest_categorical("batch_norm", (False, True))
    p["dropout"] = trial.suggest_float("dropout", 0.0, 0.5)
    if p["arch"] == "mlp":
        p["hidden_dim"] = trial.suggest_categorical("hidden_dim", HIDDEN_DIMS)
    else:
        p["channels"] = trial.suggest_categorical("channels", CHANNELS)
    return p


def model_config(params: dict[str, Any]) -> ModelConfig:
    if "network" in params:
        return SeedNetConfig(params["network"])
    common = {k: params[k] for k in ("n_layers", "batch_norm", "dropout") if k in params}
    if params.get("arch", "cnn") == "mlp":
        return MLPConfig(
            **common, **({"hidden_dim": params["hidden_dim"]} if "hidden_dim" in params else {})
        )
    return CNNConfig(
        **common, **({"channels": params["channels"]} if "channels" in params else {})
    )


def spec_from_params(params: dict[str, Any], epochs: int, seed: int) -> TrialSpec:
    """Model and training configs from a flat params dict; missing keys take config defaults."""
    keys = ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "shuffle")
    model = model_config(params)
    # BatchNorm cannot train on a final batch of one image: drop the partial batch instead.
    drop_last = (
        getattr(model, "batch_norm", False) or getattr(model, "network", "") == "batch_norm"
    )
    given = {k: params[k] for k in keys if k in params}
    train = TrainConfig(epochs=epochs, seed=seed, drop_last=drop_last, **given)
    return TrialSpec(model=model, train=train)
