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
from optuna.distributions import FloatDistribution, IntDistribution

from models import CNNConfig, MLPConfig, ModelConfig, ResNetConfig, SeedNetConfig
from models.user import Keyword, UserModelConfig, keywords
from search.params import PARAMS, names
from search.sweep import Range, Sweep
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
    """Sample one point of the built-in space (``space``: 'cpu' or 'cuda', recorded on the
    study); conditional params are only asked for when they apply."""
    return SearchSpace(space).sample(trial)[0]


@dataclass(frozen=True)
class UserModel:
    """A user's own network (``--model``) as the search sees it: its reference, its keyword
    parameters (``models.user``), its source's SHA-256."""

    ref: str
    keywords: dict[str, Keyword]
    sha256: str


@dataclass(frozen=True)
class SearchSpace:
    """What a trial samples: the one table's ranges for ``device`` ('cpu' or 'cuda'), each
    replaced or fixed where a space file (``sweep``) says so; with a user's network
    (``model``) its keyword parameters instead of our networks' (each at its default unless the
    file gives it a range). The table's conditions hold whatever the file says (momentum only
    for SGD)."""

    device: str = "cpu"
    sweep: Sweep | None = None
    model: UserModel | None = None

    def sample(self, trial: optuna.Trial) -> tuple[dict[str, Any], dict[str, Any]]:
        """(every param of the trial, those of them that are fixed rather than sampled)."""
        params: dict[str, Any] = {}
        fixed: dict[str, Any] = {}
        ranges = self.sweep.params if self.sweep is not None else {}
        for p in PARAMS:
            if (self.model is not None and p.feeds == "model") or not p.when(params):
                continue
            if p.name in ranges:
                params[p.name] = _take(trial, p.name, ranges[p.name], fixed)
            elif p.sample is not None:
                params[p.name] = p.sample(trial, self.device)
        if self.model is not None:
            params["model"] = fixed["model"] = self.model.ref
            for name, keyword in self.model.keywords.items():
                if name in ranges:
                    params[name] = _take(trial, name, ranges[name], fixed)
                elif _plain(keyword.default):  # recorded; the network applies it anyway
                    params[name] = fixed[name] = keyword.default
        return params, fixed

    def warm_start(self) -> dict[str, Any] | None:
        """The first trial of a new study: the strongest fixed recipe on the article's CNN (a
        user's network at its defaults), if it lies inside the space file's ranges; only its
        sampled params (the fixed ones are the objective's)."""
        if self.model is None:
            warm = dict(DEVICE_WARM_START[self.device])
        else:
            warm = {k: DEVICE_WARM_START[self.device][k] for k in names("train") if k in RECIPE}
            warm |= {k: kw.default for k, kw in self.model.keywords.items() if _plain(kw.default)}
        ranges = self.sweep.params if self.sweep is not None else {}
        if any(name in ranges and not ranges[name].contains(v) for name, v in warm.items()):
            return None
        sampled = {k: v for k, v in warm.items() if not (k in ranges and ranges[k].fixed)}
        if self.model is not None:  # a keyword the file gives no range stays fixed
            sampled = {k: v for k, v in sampled.items() if k in names("train") or k in ranges}
        return sampled

    def record(self) -> dict[str, Any]:
        """What a study records of its space (a resume with another is refused)."""
        return {
            "model": self.model.ref if self.model is not None else None,
            "space": self.sweep.record() if self.sweep is not None else None,
        }


def _take(trial: optuna.Trial, name: str, given: Range, fixed: dict[str, Any]) -> Any:
    if given.fixed:
        fixed[name] = given.value
        return given.value
    d = given.distribution
    if isinstance(d, FloatDistribution):
        return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
    if isinstance(d, IntDistribution):
        return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
    return trial.suggest_categorical(name, d.choices)


def _plain(value: Any) -> bool:
    """A value a study can record as it is (JSON)."""
    return value is None or isinstance(value, (bool, int, float, str))


def full_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The trial's params, plus those a grid fixed (its ``fixed_params``: no Optuna params)."""
    return {**trial.user_attrs.get("fixed_params", {}), **trial.params}


FAMILIES = {"mlp": MLPConfig, "cnn": CNNConfig, "resnet": ResNetConfig}


def model_config(given: dict[str, Any]) -> ModelConfig:
    """The model's config: a user's network (``model``) with the keyword parameters it takes,
    the seeded ``network`` a grid names, else the ``arch`` family (cnn by default) with the
    params it has fields for (the rest of the model's words do not apply to it: a residual
    net has no ``head_dim``)."""
    if "model" in given:
        taken = keywords(given["model"])
        return UserModelConfig(given["model"], {k: v for k, v in given.items() if k in taken})
    if "network" in given:
        return SeedNetConfig(given["network"])
    family = FAMILIES[given.get("arch", "cnn")]
    return family(**{f.name: given[f.name] for f in fields(family) if f.name in given})


def spec_from_params(
    params: dict[str, Any],
    epochs: int,
    seed: int,
    steps: int | None = None,
    precision: str = "fp32",
) -> TrialSpec:
    """Model and training configs from a flat params dict; missing keys take config defaults.
    ``precision`` is the run's (``search.precision``), not a param."""
    model = model_config(params)
    # BatchNorm cannot train on a final batch of one image: drop the partial batch instead
    # (a user's network may hold BatchNorm: its partial batch is dropped too).
    drop_last = (
        getattr(model, "batch_norm", False)
        or getattr(model, "network", "") == "batch_norm"
        or isinstance(model, UserModelConfig)
    )
    given = {k: params[k] for k in names("train") if k in params}
    train = TrainConfig(
        epochs=epochs, seed=seed, drop_last=drop_last, steps=steps, precision=precision, **given
    )
    return TrialSpec(model=model, train=train)
