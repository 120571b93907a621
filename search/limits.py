"""``--max-latency MS`` and ``--max-params N``: a champion that fits where it will run.

A configuration's latency and size do not depend on its weights, so both are measured once,
before it trains, on a freshly built network: ``n_parameters`` counted, ``latency_ms`` the
median time per image of the exported form MLflow serves (``models.standalone``: the
normalization layer first, fp32, the CPU, eval mode), at batch 1 on one CPU thread, over
``REPEATS`` calls after ``WARM_UP``. A configuration over a limit is not trained: its trial
ends PRUNED at once with the reason (``over_limit``) and its costs, which costs milliseconds,
not a trial (it does not count towards ``--trials``); every measured trial sets Optuna's
constraints (``Trial.set_constraint``), from which TPE learns, and one over a limit can never
win, be re-run or be fitted (only COMPLETE trials can). The limits are the study's (recorded;
a resume with others is refused).
"""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from models import build_model, count_parameters, standalone
from search.errors import UserError
from search.params import CHANNELS, HEAD_DIMS, HEAD_LAYERS, PARAMS

WARM_UP = 5  # calls before timing: one-off set-up of the first calls
REPEATS = 30  # timed calls; the median is the figure (docs/measured.md: its spread)
CORNERS = 256  # at most this many configurations tried for the smallest the space reaches
KEY = "limits"  # the study's user attribute


class LimitError(UserError):
    """A limit that no configuration of the space can meet: one line, exit 2."""


@dataclass(frozen=True)
class Costs:
    latency_ms: float
    n_parameters: int


@dataclass(frozen=True)
class Limits:
    max_latency_ms: float | None = None
    max_params: int | None = None

    @property
    def active(self) -> bool:
        return self.max_latency_ms is not None or self.max_params is not None

    def record(self) -> dict[str, Any]:
        return {"max_latency_ms": self.max_latency_ms, "max_params": self.max_params}

    def over(self, costs: Costs) -> str | None:
        """Why ``costs`` break a limit, or ``None``."""
        if self.max_latency_ms is not None and costs.latency_ms > self.max_latency_ms:
            return f"latency {costs.latency_ms:.3g} ms over --max-latency {self.max_latency_ms:g}"
        if self.max_params is not None and costs.n_parameters > self.max_params:
            return f"{costs.n_parameters:,} parameters over --max-params {self.max_params:,}"
        return None

    def constraints(self, costs: Costs) -> dict[str, float]:
        """Optuna's constraint values (<= 0 feasible, ``Trial.set_constraint``): how far over
        each limit ``costs`` are. TPE ranks a configuration over a limit among the worst,
        whatever its state, and learns to avoid its region."""
        values = {}
        if self.max_latency_ms is not None:
            values["latency_ms"] = costs.latency_ms - self.max_latency_ms
        if self.max_params is not None:
            values["n_parameters"] = float(costs.n_parameters - self.max_params)
        return values

    def words(self, costs: Costs) -> str:
        """The champion's costs beside the limits, for the summary."""
        latency = f"{costs.latency_ms:.3g} ms per image"
        if self.max_latency_ms is not None:
            latency += f" (--max-latency {self.max_latency_ms:g})"
        size = f"{costs.n_parameters:,} parameters"
        if self.max_params is not None:
            size += f" (--max-params {self.max_params:,})"
        return f"{latency}, {size}"


def latency_ms(network: torch.nn.Module, mean: float = 0.0, std: float = 1.0) -> float:
    """Median milliseconds per image of ``network`` as MLflow serves it (``standalone``), at
    batch 1 on one CPU thread."""
    served = standalone(network, mean, std)  # shares the layers: moves them to the CPU
    image = torch.full((1, 1, 28, 28), 0.5)  # the random stream is the trial's: not touched
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for _ in range(WARM_UP):
                served(image)
            times = []
            for _ in range(REPEATS):
                start = time.perf_counter()
                served(image)
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times) * 1000


def costs(network: torch.nn.Module, mean: float, std: float) -> Costs:
    """A network's latency and size (``network`` is left on the CPU, in eval mode)."""
    return Costs(latency_ms(network, mean, std), count_parameters(network))


def corners(ranges: dict[str, list]) -> list[dict[str, Any]]:
    """The combinations of the model's ranges (each given as the values to try), at most
    ``CORNERS`` of them."""
    return [
        dict(zip(ranges, values, strict=True))
        for values in itertools.islice(itertools.product(*ranges.values()), CORNERS)
    ]


def smallest(configs: list[dict[str, Any]], make, timed: bool = True) -> Costs:
    """The least latency (``timed``; else 0) and the fewest parameters over ``configs``
    (``make(config)`` builds a network)."""
    networks = [make(c) for c in configs]
    fewest = min(count_parameters(n) for n in networks)
    fastest = min(latency_ms(n) for n in networks) if timed else 0.0
    return Costs(fastest, fewest)


def check_limits(limits: Limits, space) -> None:
    """Before anything is written: a limit that no configuration of ``space`` can meet is one
    line naming the least the space reaches (its latency timed only for --max-latency)."""
    if not limits.active:
        return
    timed = limits.max_latency_ms is not None
    check_reachable(limits, smallest(corners(model_ranges(space)), builder(space), timed))


def check_reachable(limits: Limits, least: Costs) -> None:
    """A limit below the least the space reaches is refused, naming that least."""
    if limits.max_latency_ms is not None and least.latency_ms > limits.max_latency_ms:
        raise LimitError(
            f"--max-latency {limits.max_latency_ms:g}: no configuration of the space answers "
            f"that fast here; the fastest takes {least.latency_ms:.3g} ms per image"
        )
    if limits.max_params is not None and least.n_parameters > limits.max_params:
        raise LimitError(
            f"--max-params {limits.max_params:,}: every configuration of the space is larger; "
            f"the smallest has {least.n_parameters:,} parameters"
        )


def model_ranges(space) -> dict[str, list]:
    """The values of the network's words worth trying for the least cost (``space``: a
    ``search.space.SearchSpace``): the built-in space's choices, or a space file's (each
    choice, an integer range's ends, a float's low end: dropout costs nothing); a user's
    network's keyword parameters the file gives."""
    ranges = space.sweep.params if space.sweep is not None else {}
    if space.model is not None:
        return {name: _ends(ranges[name]) for name in space.model.keywords if name in ranges}
    out = {
        "arch": ["cnn"],
        "n_layers": [1, 2, 3],
        "batch_norm": [False, True],
        "channels": list(CHANNELS[space.device]),
        "head_dim": list(HEAD_DIMS),
        "head_layers": list(HEAD_LAYERS),
    }
    model_words = {p.name for p in PARAMS if p.feeds == "model"}
    out.update({name: _ends(g) for name, g in ranges.items() if name in model_words})
    return out


def _ends(given) -> list:
    d = given.distribution
    if d is None:
        return [given.value]
    if hasattr(d, "choices"):
        return list(d.choices)
    return [d.low, d.high] if isinstance(d.low, int) else [d.low]


def builder(space) -> Any:
    """``make(config)``: the network of a model-words configuration of ``space``."""
    from search.space import model_config

    def make(config: dict[str, Any]) -> torch.nn.Module:
        words = dict(config)
        if space.model is not None:
            words["model"] = space.model.ref
        return build_model(model_config(words)).eval()

    return make
