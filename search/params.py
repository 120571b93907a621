"""The one table of parameters: every word a configuration is made of, once.

Each ``Param`` says what its name means everywhere it appears (the Optuna param, the MLflow
param, the config field, the grid key): which config it feeds (the model's, the training's, or
the run's), what a grid may give it, whether and how the search space samples it (per device
space, and only when it applies), and one line of help. ``search.space`` samples from it,
``search.grid`` checks grid files against it, ``spec_from_params`` sorts a flat params dict by
it, and ``docs/search.md``'s table of the space is ``markdown_table()`` (a test compares them).
The order is the sampling order: a seeded study draws the same points as long as it stays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from models import SEED_NETWORKS
from search.device import DEVICE_TYPES
from search.train import OPTIMIZERS, SCHEDULES

ARCHS = ("mlp", "cnn", "resnet")  # every family a grid may name
SEARCH_OPTIMIZERS = ("sgd", "adam", "adamw")
SEARCH_SCHEDULES = ("onecycle", "cosine")
# Up to 0.1: AdamW's decoupled decay works at 0.01-0.1 (the recipe's 0.05); SGD's and Adam's
# coupled decay wants 1e-5..1e-3, which TPE learns from the trials.
WEIGHT_DECAY = (1e-6, 1e-1)
# On a GPU, batches of 64 are launch-bound (about 17,000 images/s on an H100 whatever the
# setting) while batches of 1024 train at 250,000: there, larger batches and wider networks cost
# the same seconds (docs/measured.md). The CPU sizes are the measured ones.
BATCH_SIZES = {"cpu": (64, 128, 256), "cuda": (256, 512)}
CHANNELS = {"cpu": (16, 24, 32), "cuda": (32, 48, 64)}
HEAD_DIMS = (128, 256, 512)
HEAD_LAYERS = (1, 2)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _one_of(options: tuple) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in options), f"one of {list(options)}"


NUMBER, INTEGER, BOOL = (_number, "a number"), (_integer, "an integer"), (_bool, "true or false")
Sampler = Callable[[optuna.Trial, str], Any]  # (trial, the study's space) -> a value


def _always(params: dict[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class Param:
    name: str
    feeds: str  # "model", "train" or "run" (the run's own: shuffle order, device, recorded keys)
    grid: tuple[Callable[[Any], bool], str]  # what a grid value must be, and that in words
    help: str
    sample: Sampler | None = None  # None: not in the search space (grid mode only)
    when: Callable[[dict[str, Any]], bool] = _always  # sampled only if it applies to these
    space: str = ""  # the search space's range, in words (the docs' table)
    applies: str = "always"  # when it is sampled, in words


def _float(low: float, high: float, log: bool = False) -> Callable[[str], Sampler]:
    return lambda name: lambda trial, space: trial.suggest_float(name, low, high, log=log)


def _choices(options: tuple | dict) -> Callable[[str], Sampler]:
    def make(name: str) -> Sampler:
        def sample(trial: optuna.Trial, space: str) -> Any:
            return trial.suggest_categorical(
                name, options[space] if isinstance(options, dict) else options
            )

        return sample

    return make


def _param(name: str, feeds: str, grid, help: str, sample=None, **rest) -> Param:
    return Param(name, feeds, grid, help, sample(name) if sample else None, **rest)


PARAMS: tuple[Param, ...] = (
    _param("lr", "train", (_number, "a positive number"), "learning rate (the schedule's peak)",
           _float(3e-4, 2e-1, log=True), space="log-uniform 3e-4 .. 2e-1"),
    _param("batch_size", "train", INTEGER, "training images per optimizer step",
           _choices(BATCH_SIZES), space="64, 128, 256 (on a GPU: 256, 512)"),
    _param("optimizer", "train", _one_of(OPTIMIZERS), "the optimizer",
           _choices(SEARCH_OPTIMIZERS), space="sgd, adam, adamw (rmsprop: grid only)"),
    _param("momentum", "train", (_number, "a number in [0, 1)"), "SGD's momentum",
           _float(0.8, 0.99), when=lambda p: p["optimizer"] == "sgd",
           space="uniform 0.8 .. 0.99", applies="sgd only"),
    _param("weight_decay", "train", (_number, "a number >= 0"), "weight decay",
           _float(*WEIGHT_DECAY, log=True), space="log-uniform 1e-6 .. 1e-1"),
    _param("schedule", "train", _one_of(SCHEDULES), "the learning rate over the run, per batch",
           _choices(SEARCH_SCHEDULES), space="onecycle, cosine (constant: grid only)"),
    _param("arch", "model", _one_of(ARCHS), "the network's family",
           _choices(("cnn",)), space="cnn (mlp, resnet: grid only)"),
    _param("n_layers", "model", INTEGER, "blocks (cnn), stages (resnet) or hidden layers (mlp)",
           lambda name: lambda trial, space: trial.suggest_int(name, 1, 3),
           space="1 .. 3 conv blocks (3x3 conv, [BatchNorm], ReLU, max-pool)"),
    _param("batch_norm", "model", BOOL, "BatchNorm after each conv and hidden layer",
           _choices((False, True)), space="false, true (also BatchNorm1d in the head)"),
    _param("dropout", "model", (_number, "a number in [0, 1)"), "dropout after each head layer",
           _float(0.0, 0.5), space="uniform 0 .. 0.5"),
    _param("channels", "model", INTEGER, "the first block's width, doubling per block",
           _choices(CHANNELS), space="16, 24, 32, doubling per block (on a GPU: 32, 48, 64)"),
    _param("head_dim", "model", INTEGER, "the width of the head's hidden layers",
           _choices(HEAD_DIMS), space="128, 256, 512"),
    _param("head_layers", "model", INTEGER, "hidden layers in the head",
           _choices(HEAD_LAYERS), space="1, 2"),
    _param("hidden_dim", "model", INTEGER, "an MLP's hidden width"),
    _param("augment", "train", BOOL, "random crop (+-2 px) and flip; long final fits: on"),
    _param("label_smoothing", "train", (_number, "a number in [0, 1)"),
           "target smoothing; final fits of 10+ epochs: 0.1"),
    _param("network", "model", _one_of(SEED_NETWORKS), "one of the tutorial's seeded networks"),
    _param("shuffle", "train", BOOL, "reshuffle the training images every epoch"),
    _param("num_workers", "run", (_integer, "an integer (recorded only: batches need no workers)"),
           "the tutorial's loader workers (recorded only)"),
    _param("device", "run", _one_of(DEVICE_TYPES), "where the run trains"),
    _param("model", "model", (lambda v: isinstance(v, str), "PATH.py:NAME or module:NAME"),
           "your own network (--model): its keyword parameters are its words"),
)  # fmt: skip
BY_NAME = {p.name: p for p in PARAMS}


def sample(trial: optuna.Trial, space: str) -> dict[str, Any]:
    """One point of the search space (``space``: 'cpu' or 'cuda'), each param only when it
    applies, in the table's order."""
    params: dict[str, Any] = {}
    for p in PARAMS:
        if p.sample is not None and p.when(params):
            params[p.name] = p.sample(trial, space)
    return params


def names(feeds: str) -> tuple[str, ...]:
    """The params that feed ``feeds`` ('model', 'train' or 'run')."""
    return tuple(p.name for p in PARAMS if p.feeds == feeds)


def markdown_table() -> str:
    """Every param as the docs show it: what it is, its range in the search space (or grid
    only) and when it is sampled, and what a grid file may give it."""
    rows = ["| param | what | search space | a grid value |", "| --- | --- | --- | --- |"]
    for p in PARAMS:
        searched = f"{p.space}" + ("" if p.applies == "always" else f" ({p.applies})")
        rows.append(f"| `{p.name}` | {p.help} | {searched or 'grid only'} | {p.grid[1]} |")
    return "\n".join(rows)
