"""A space file (``--space``): the ranges a search samples, in the sweep syntax users already
write (W&B's sweep configuration), read into Optuna's own distributions.

    method: bayes            # grid | random | bayes  ->  grid mode, RandomSampler, TPE
    metric: {name: val_accuracy, goal: maximize}
    run_cap: 30              # the number of trials, unless --trials says otherwise
    early_terminate: {type: hyperband, min_iter: 1, eta: 3}   # the hyperband pruner
    parameters:
      lr: {distribution: log_uniform_values, min: 0.0001, max: 0.1}
      optimizer: {values: [adam, sgd]}
      batch_size: {values: [32, 64, 128]}
      dropout: {min: 0.0, max: 0.5}
      schedule: {value: cosine}

A parameter is ``{values: [...]}`` (a choice: ``CategoricalDistribution``), ``{value: x}``
(fixed: no Optuna param, recorded as the trial's ``fixed_params``), ``{min, max}`` (uniform:
``IntDistribution`` when both are integers, else ``FloatDistribution``), or a ``distribution``:
``uniform``, ``int_uniform``, ``log_uniform_values`` (log=True), ``log_uniform`` (W&B's bounds
are exponents: e**min .. e**max, log=True), ``q_uniform`` (``step=q``), ``categorical``,
``constant``. Distributions without bounds (``normal``, ``log_normal``) or a log range with a
step (``q_log_uniform_values``) have no Optuna counterpart and are refused. A parameter the
file does not name keeps its default range (``search.params``). A map of names to plain lists,
or ``method: grid``, is a grid (``search.grid``). Every problem is one ``SweepError`` line naming
the file and the parameter.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from search.errors import UserError
from search.files import parse
from search.params import names

METHODS = {"grid": "grid", "random": "random", "bayes": "tpe"}  # W&B's name -> --sampler
METRIC = "val_accuracy"  # the one metric a study optimizes, upwards
TOP = ("method", "metric", "parameters", "run_cap", "early_terminate")
THEIRS = ("program", "command", "entity", "project", "name", "description")  # ignored, said
NO_COUNTERPART = ("normal", "log_normal", "q_normal", "q_log_normal", "q_log_uniform_values")
NO_COUNTERPART += ("q_log_uniform", "inv_log_uniform", "inv_log_uniform_values", "beta")
NO_COUNTERPART += ("q_beta",)
# Names a sweep file of another tool would use for one of ours.
SYNONYMS = {
    "learning_rate": "lr",
    "learning-rate": "lr",
    "batch": "batch_size",
    "batchsize": "batch_size",
    "opt": "optimizer",
    "wd": "weight_decay",
    "lr_schedule": "schedule",
    "scheduler": "schedule",
    "layers": "n_layers",
    "num_layers": "n_layers",
}


MODEL_WORDS = names("model")  # our networks' words: refused with a user's network


class SweepError(UserError, ValueError):
    """A space file that cannot be used: one line naming the file and what is wrong."""


@dataclass(frozen=True)
class Range:
    """One parameter of a space file: a distribution to sample, or a fixed value."""

    distribution: BaseDistribution | None = None
    value: Any = None  # when fixed (no distribution)

    @property
    def fixed(self) -> bool:
        return self.distribution is None

    def record(self) -> Any:
        """As the study records it (and a resume compares it)."""
        if self.fixed:
            return {"value": self.value}
        return {"distribution": distribution_to_json(self.distribution)}

    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies inside (a warm start runs only where it does)."""
        d = self.distribution
        if d is None:
            return value == self.value
        if isinstance(d, CategoricalDistribution):
            return value in d.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not d.low <= value <= d.high:
            return False
        return d.step is None or math.isclose((value - d.low) / d.step % 1, 0, abs_tol=1e-9)


@dataclass(frozen=True)
class Header:
    """What a space file says besides its parameters, and how each is taken."""

    method: str | None = None  # --sampler's name: grid, random, tpe
    run_cap: int | None = None
    pruner: str | None = None  # from early_terminate
    pruner_options: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # how each top-level key was taken, for one line at the start
    grid: bool = False  # a grid: a plain map of lists, or method: grid


@dataclass(frozen=True)
class Sweep:
    path: str
    header: Header
    params: dict[str, Range]

    def record(self) -> dict[str, Any]:
        return {name: r.record() for name, r in self.params.items()}


def read(path: str | Path) -> Any:
    """The file's content (JSON or YAML; a key twice is refused: ``search.files``)."""
    return parse(Path(path), "--space", SweepError)


def is_plain_grid(content: Any) -> bool:
    """A map of names to lists (the tutorials' grid files), not a sweep."""
    if not isinstance(content, dict) or "parameters" in content:
        return False
    return not any(isinstance(v, dict) for v in content.values())


def header(path: str | Path) -> Header:
    """The top-level keys of a space file, checked and taken (its parameters are read by
    ``sweep``, once the model is known)."""
    content = read(path)
    if is_plain_grid(content):
        if not content:
            raise SweepError(f"--space {path}: empty; give parameters (see docs/search.md)")
        return Header(method="grid", grid=True)
    return _header(content, str(path))


def _header(content: dict, path: str) -> Header:
    unknown = [k for k in content if k not in TOP and k not in THEIRS]
    if unknown:
        raise SweepError(f"--space {path}: unknown key {unknown[0]!r}; it takes {', '.join(TOP)}")
    notes = []
    method = content.get("method")
    if method is not None:
        if method not in METHODS:
            raise SweepError(
                f"--space {path}: method must be one of {', '.join(METHODS)}, got {method!r}"
            )
        notes.append(f"method {method} -> --sampler {METHODS[method]}")
    _check_metric(content.get("metric"), path)
    run_cap = content.get("run_cap")
    if run_cap is not None:
        if isinstance(run_cap, bool) or not isinstance(run_cap, int) or run_cap < 1:
            wrong = f"run_cap must be a positive integer, got {run_cap!r}"
            raise SweepError(f"--space {path}: {wrong}")
        notes.append(f"run_cap {run_cap} -> --trials {run_cap} (unless --trials is given)")
    pruner, options, said = _early_terminate(content.get("early_terminate"), path)
    notes += said
    ignored = [k for k in content if k in THEIRS]
    if ignored:
        notes.append(f"{', '.join(ignored)} ignored (W&B's own)")
    grid = METHODS.get(method) == "grid"
    return Header(METHODS.get(method), run_cap, pruner, options, tuple(notes), grid)


def _check_metric(metric: Any, path: str) -> None:
    if metric is None:
        return
    if not isinstance(metric, dict) or metric.get("name") != METRIC:
        name = metric.get("name") if isinstance(metric, dict) else metric
        raise SweepError(
            f"--space {path}: metric must be {METRIC} (what every trial reports), got {name!r}"
        )
    goal = metric.get("goal", "minimize")  # W&B's default
    if goal != "maximize":
        raise SweepError(
            f"--space {path}: metric {METRIC} is maximized: its goal must be maximize, got "
            f"{goal!r} (W&B's default is minimize)"
        )


def _early_terminate(given: Any, path: str) -> tuple[str | None, dict[str, int], list[str]]:
    if given is None:
        return None, {}, []
    if not isinstance(given, dict) or given.get("type") != "hyperband":
        kind = given.get("type") if isinstance(given, dict) else given
        raise SweepError(f"--space {path}: early_terminate type must be hyperband, got {kind!r}")
    options = {}
    if "min_iter" in given:
        options["min_resource"] = given["min_iter"]
    if "eta" in given:
        options["reduction_factor"] = given["eta"]
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SweepError(f"--space {path}: early_terminate {key} must be a positive integer")
    taken = ", ".join(f"{k}={v}" for k, v in options.items()) or "its defaults"
    left = [k for k in ("max_iter", "s") if k in given]
    note = f"early_terminate hyperband -> the hyperband pruner over steps ({taken})"
    note += f"; {', '.join(left)} not used" if left else ""
    return "hyperband", options, [note]


# --- the parameters --------------------------------------------------------------------------

Check = Callable[[Any], str | None]  # a value -> what is wrong with it, or None


def sweep(path: str | Path, allowed: dict[str, Check], model: str = "") -> Sweep:
    """The space file at ``path``, its parameters checked against ``allowed`` (the names this
    model takes, each with what its values must be; ``model`` names the network for the
    message listing them)."""
    content = read(path)
    path = str(path)
    if is_plain_grid(content):
        raise SweepError(f"--space {path}: a map of names to lists is a grid (--grid {path})")
    head = _header(content, path)
    given = content.get("parameters")
    if not isinstance(given, dict) or not given:
        raise SweepError(f"--space {path}: parameters must map names to ranges, got {given!r}")
    params = {}
    for name, spec in _flat(given).items():
        if name not in allowed:
            raise SweepError(unknown_line(path, name, allowed, model))
        params[name] = parameter(spec, f"--space {path}: {name}")
        _check_values(params[name], allowed[name], f"--space {path}: {name}")
    return Sweep(path, head, params)


def _flat(given: dict) -> dict[str, Any]:
    """Nested ``parameters:`` only group keys: their leaves, at the top."""
    out = {}
    for name, spec in given.items():
        if isinstance(spec, dict) and isinstance(spec.get("parameters"), dict):
            out.update(_flat(spec["parameters"]))
        else:
            out[name] = spec
    return out


def unknown_line(path: str, name: str, allowed: dict, model: str) -> str:
    hint = SYNONYMS.get(name) or next(iter(difflib.get_close_matches(name, allowed, 1)), None)
    did = f" (did you mean {hint}?)" if hint else ""
    if name == "epochs":
        did = " (a trial's length is --epochs, a flag, not a parameter)"
    elif model and name in MODEL_WORDS:
        did = f" ({name} is a parameter of our networks, not of {model.removeprefix('--model ')})"
    who = f"{model} takes" if model else "this model takes"
    return f"--space {path}: unknown parameter {name!r}{did}; {who}: {', '.join(allowed)}"


def parameter(spec: Any, where: str) -> Range:
    """One parameter's spec as a ``Range``; ``where`` (``--space FILE: NAME``) opens errors."""
    if not isinstance(spec, dict):
        raise SweepError(f"{where}: must be a mapping such as {{values: [...]}} or {{min, max}}")
    kind = spec.get("distribution")
    if kind in NO_COUNTERPART:
        raise SweepError(
            f"{where}: distribution {kind} has no Optuna counterpart (bounded ranges only)"
        )
    if kind == "constant" or (kind is None and "value" in spec):
        if "value" not in spec:
            raise SweepError(f"{where}: distribution constant needs value")
        return Range(value=spec["value"])
    if kind == "categorical" or (kind is None and "values" in spec):
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise SweepError(f"{where}: values must be a non-empty list, got {values!r}")
        return Range(CategoricalDistribution(values))
    return Range(_bounded(spec, kind, where))


def _bounded(spec: dict, kind: str | None, where: str) -> BaseDistribution:
    low, high = spec.get("min"), spec.get("max")
    for bound in (low, high):
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise SweepError(f"{where}: needs numbers min and max (or values, or value)")
    if not low < high:
        raise SweepError(f"{where}: min {low} must be below max {high}")
    integers = isinstance(low, int) and isinstance(high, int)
    if kind is None:
        kind = "int_uniform" if integers else "uniform"
    if kind == "int_uniform":
        if not integers:
            raise SweepError(f"{where}: int_uniform needs integer min and max")
        return IntDistribution(low, high)
    if kind == "uniform":
        return FloatDistribution(float(low), float(high))
    if kind == "log_uniform_values":
        if low <= 0:
            raise SweepError(f"{where}: a log range must lie above 0, got min {low}")
        return FloatDistribution(float(low), float(high), log=True)
    if kind == "log_uniform":  # W&B's bounds are exponents of e
        return FloatDistribution(math.exp(low), math.exp(high), log=True)
    if kind == "q_uniform":
        return _stepped(low, high, spec.get("q", 1), integers, where)
    known = "uniform, int_uniform, log_uniform_values, log_uniform, q_uniform, categorical, "
    raise SweepError(f"{where}: unknown distribution {kind!r}; known: {known}constant")


def _stepped(low, high, q, integers: bool, where: str) -> BaseDistribution:
    if isinstance(q, bool) or not isinstance(q, (int, float)) or q <= 0:
        raise SweepError(f"{where}: q must be a positive number, got {q!r}")
    if integers and isinstance(q, int):
        return IntDistribution(low, high - (high - low) % q, step=q)
    top = low + math.floor((high - low) / q + 1e-9) * q  # Optuna wants high on the grid
    return FloatDistribution(float(low), float(top), step=float(q))


def _check_values(given: Range, check: Check, where: str) -> None:
    """Every value a range can give (its choices, its bounds, its fixed value) must be one
    this parameter takes."""
    d = given.distribution
    if d is None:
        values = [given.value]
    elif isinstance(d, CategoricalDistribution):
        values = list(d.choices)
    else:
        values = [d.low, d.high]
        if isinstance(d, IntDistribution):
            values = [int(v) for v in values]
    for value in values:
        problem = check(value)
        if problem:
            raise SweepError(f"{where}: {problem}, got {value!r}")
