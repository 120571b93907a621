"""Grid mode: the tutorial's RunBuilder sweep, every combination exactly once.

A grid file (JSON or YAML) maps parameter names to lists of values, in order:

    {"lr": [0.01], "batch_size": [1000, 2000], "shuffle": [true, false]}

``load_grid`` validates it (known keys, non-empty lists, right types, every value a valid
setting) and ``combinations`` expands it lazily like ``itertools.product`` (RunBuilder's
``get_runs``): a grid of 10 keys x 10 values has 10**10 combinations, so its size and a
combination's place are computed from the lists' lengths, and the product is never built.
Keys not in the grid take ``GRID_DEFAULTS``: the tutorial's RunManager loop (Adam, lr 0.01,
batch 1000, shuffled) on its ``no_batch_norm`` network, unless the grid names an ``arch``.
``run_table`` rebuilds RunManager's per-(run, epoch) table from the trials' history.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.errors import UserError
from search.files import parse
from search.params import PARAMS, names
from search.space import spec_from_params

if TYPE_CHECKING:  # pandas takes half a second to import: only where a table is built
    import pandas as pd

GRID_DEFAULTS: dict[str, Any] = {
    "lr": 0.01,  # RunManager's loop: Adam at 0.01
    "batch_size": 1000,  # the seed sweep's batch size
    "optimizer": "adam",
    "shuffle": True,
    "network": "no_batch_norm",  # the tutorial's Network() class; replaced when `arch` is given
}


# key -> (check, what the check wants, in words): every param of the one table
GRID_KEYS = {p.name: p.grid for p in PARAMS}
MODEL_KEYS = set(names("model")) - {"network"}  # the words of a family, not of a seed net


# A grid is a promise to run every combination once: at a second per trial, 100,000 is a day,
# and each one is a row in the study. Beyond that the promise cannot be kept.
MAX_GRID = 100_000


class GridError(UserError, ValueError):
    """A grid file that cannot be used; the message is one line naming the file."""


def as_lists(content: Any, where: str) -> Any:
    """A grid in the sweep syntax (``method: grid``, ``search.sweep``) as a plain map of
    lists: ``values`` as they are, ``value`` as a list of one; anything else is refused."""
    if not isinstance(content, dict) or "parameters" not in content:
        return content
    given = content["parameters"]
    if not isinstance(given, dict):
        return given
    grid = {}
    for name, spec in given.items():
        if isinstance(spec, dict) and "values" in spec:
            grid[name] = spec["values"]
        elif isinstance(spec, dict) and "value" in spec:
            grid[name] = [spec["value"]]
        else:
            raise GridError(f"{where}: {name}: a grid takes values or value, got {spec!r}")
    return grid


def load_grid(
    path: str | Path, flag: str = "--grid", keys: dict[str, tuple] | None = None
) -> dict[str, list]:
    """Read and validate a grid file (``flag`` names it in errors; ``keys``: the names it may
    give and what their values must be, by default every param of the one table); returns
    the ordered mapping of key -> values."""
    path, keys = Path(path), keys or GRID_KEYS
    where = f"{flag} {path}"
    grid = as_lists(parse(path, flag, GridError), where)
    allowed = ", ".join(keys)
    if not isinstance(grid, dict) or not grid:
        raise GridError(f"{where}: must map parameter names to lists; allowed: {allowed}")
    for key, values in grid.items():
        if key not in keys:
            raise GridError(f"{where}: unknown key {key!r}; allowed: {allowed}")
        if not isinstance(values, list) or not values:
            raise GridError(f"{where}: {key} must be a non-empty list, got {values!r}")
        check, wants = keys[key]
        for v in values:
            if not check(v):
                raise GridError(f"{where}: {key} values must be {wants}, got {v!r}")
    size = grid_size(grid)
    if size > MAX_GRID:
        lengths = "x".join(str(len(v)) for v in grid.values())
        raise GridError(
            f"{where}: {size:,} combinations ({lengths}) cannot each run once; at most "
            f"{MAX_GRID:,}: fewer values, or the search mode (TPE) for a space this large"
        )
    if "network" in grid and MODEL_KEYS & grid.keys():
        clash = sorted(MODEL_KEYS & grid.keys())
        raise GridError(f"{where}: network names a fixed net; it excludes {clash}")
    first = {key: values[0] for key, values in grid.items()}
    for key, values in grid.items():  # each value once, with the first of every other key
        for v in values:
            try:
                spec_from_params(with_defaults({**first, key: v}), epochs=1, seed=0)
            except ValueError as exc:
                raise GridError(f"{where}: {exc}") from None
    return grid


def combinations(grid: dict[str, list]) -> Iterator[dict[str, Any]]:
    """RunBuilder.get_runs: the product of the lists, in order, as dicts, one at a time."""
    return (dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values()))


def grid_size(grid: dict[str, list]) -> int:
    return math.prod(map(len, grid.values()))


def run_number(grid: dict[str, list], combo: dict[str, Any]) -> int | None:
    """``combo``'s place in the product (1-based, RunManager's ``run``), from the lists'
    lengths: the last key varies fastest. ``None`` if a value is not in the grid."""
    number = 0
    for key, values in grid.items():
        if combo.get(key) not in values:
            return None
        number = number * len(values) + values.index(combo[key])
    return number + 1


def with_defaults(combo: dict[str, Any]) -> dict[str, Any]:
    """A combination completed with the fixed defaults for every key it does not name."""
    params = {k: v for k, v in GRID_DEFAULTS.items() if k not in combo}
    if MODEL_KEYS & combo.keys():
        params.pop("network", None)
    return {**params, **combo}


def run_table(rows: list[dict[str, Any]], grid_keys: list[str]) -> pd.DataFrame:
    """RunManager's columns: run, epoch, loss, accuracy, epoch duration, run duration, then every
    grid parameter; ``rows`` hold those fields already (see ``search.report``)."""
    columns = ["run", "epoch", "loss", "accuracy", "epoch duration", "run duration", *grid_keys]
    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("accuracy", ascending=False, kind="stable").reset_index(drop=True)
