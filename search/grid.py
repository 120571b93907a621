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
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search.errors import UserError
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


class RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A mapping that refuses a repeated key (``json`` and PyYAML keep the last silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise RepeatedKey(key)
        out[key] = value
    return out


def _yaml(text: str) -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            pairs = [
                (self.construct_object(k, deep=deep), self.construct_object(v, deep=deep))
                for k, v in node.value
            ]
            return _unique(pairs)

    Loader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, Loader.construct_mapping
    )
    return yaml.load(text, Loader=Loader)  # a SafeLoader: no arbitrary objects


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GridError(f"--grid {path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise GridError(f"--grid {path}: not a text file (JSON or YAML expected)") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            return _yaml(text)
        return json.loads(text, object_pairs_hook=_unique)
    except RepeatedKey as exc:
        raise GridError(f"--grid {path}: the key {exc.key!r} appears twice") from None
    except Exception as exc:  # json and yaml raise different types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GridError(f"--grid {path}: not valid {path.suffix[1:] or 'JSON'}: {first}") from None


def load_grid(path: str | Path) -> dict[str, list]:
    """Read and validate a grid file; returns the ordered mapping of key -> values."""
    path = Path(path)
    grid = _parse(path)
    allowed = ", ".join(GRID_KEYS)
    if not isinstance(grid, dict) or not grid:
        raise GridError(f"--grid {path}: must map parameter names to lists; allowed: {allowed}")
    for key, values in grid.items():
        if key not in GRID_KEYS:
            raise GridError(f"--grid {path}: unknown key {key!r}; allowed: {allowed}")
        if not isinstance(values, list) or not values:
            raise GridError(f"--grid {path}: {key} must be a non-empty list, got {values!r}")
        check, wants = GRID_KEYS[key]
        for v in values:
            if not check(v):
                raise GridError(f"--grid {path}: {key} values must be {wants}, got {v!r}")
    size = grid_size(grid)
    if size > MAX_GRID:
        lengths = "x".join(str(len(v)) for v in grid.values())
        raise GridError(
            f"--grid {path}: {size:,} combinations ({lengths}) cannot each run once; at most "
            f"{MAX_GRID:,}: fewer values, or the search mode (TPE) for a space this large"
        )
    if "network" in grid and MODEL_KEYS & grid.keys():
        clash = sorted(MODEL_KEYS & grid.keys())
        raise GridError(f"--grid {path}: network names a fixed net; it excludes {clash}")
    first = {key: values[0] for key, values in grid.items()}
    for key, values in grid.items():  # each value once, with the first of every other key
        for v in values:
            try:
                spec_from_params(with_defaults({**first, key: v}), epochs=1, seed=0)
            except ValueError as exc:
                raise GridError(f"--grid {path}: {exc}") from None
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
