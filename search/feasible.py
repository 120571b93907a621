"""Whether a configuration can run at all on this data and this machine, before training.

Two things make a trial impossible rather than bad: a device that is not here (a grid may name
``device: cuda`` on a CPU machine), and BatchNorm without a full batch (BatchNorm drops the
partial last batch, so ``batch_size`` above the training images leaves none, and a batch of
one image has no variance to normalize by). In search mode such a trial ends FAIL with the
reason in its ``cannot_run`` user attribute and the study goes on; a grid value that can never
run is refused before anything is written (``check_grid``).
"""

from __future__ import annotations

from itertools import product
from typing import Any

from search.device import available
from search.grid import GridError, with_defaults
from search.space import spec_from_params


class CannotRun(RuntimeError):
    """This trial's configuration cannot run here; ``str()`` says why, in one line."""


def why_not(params: dict[str, Any], train_images: int) -> str | None:
    """Why ``params`` cannot run on ``train_images`` here, or ``None`` if it can."""
    device = params.get("device")
    if device is not None and device not in available():
        return f"device {device!r} is not available here (available: {available()})"
    spec = spec_from_params(params, epochs=1, seed=0)
    batch = spec.train.batch_size
    if spec.train.drop_last and batch > train_images:
        return (
            f"batch_size {batch} with BatchNorm leaves no full batch "
            f"of the {train_images} training images"
        )
    if spec.train.drop_last and batch < 2:
        return "batch_size 1 with BatchNorm: a batch of one image cannot be normalized"
    return None


def check(params: dict[str, Any], train_images: int) -> None:
    """Raise ``CannotRun`` if ``params`` cannot run here."""
    reason = why_not(params, train_images)
    if reason is not None:
        raise CannotRun(reason)


# Keys whose values decide together whether a batch can be trained: a value of one of them is
# tried with every value of the others (a few lists' worth, never the grid's product).
COUPLED = ("batch_size", "batch_norm", "network")


def check_grid(grid: dict[str, list], train_images: int, path: str) -> None:
    """Every value of every key must be able to run in at least one combination: a value that
    never can (a missing device; a batch size that no BatchNorm setting of the grid can fill)
    is one ``GridError`` naming it. Values are checked one by one with the others' first
    values, and with every value of the keys they are coupled with (``COUPLED``)."""
    # The device is judged on its own: a missing one must not be blamed on every other value.
    first = {key: values[0] for key, values in grid.items() if key != "device"}
    for key, values in grid.items():
        for value in values:
            reasons = [
                why_not(with_defaults({**first, **partners, key: value}), train_images)
                for partners in _coupled(grid, key)
            ]
            if all(reasons):
                raise GridError(f"--grid {path}: {key} {value!r} can never run: {reasons[0]}")


def _coupled(grid: dict[str, list], key: str) -> list[dict[str, Any]]:
    """Every combination of the grid's other coupled keys (none: one empty combination)."""
    if key not in COUPLED:
        return [{}]
    others = [k for k in COUPLED if k != key and k in grid]
    return [
        dict(zip(others, values, strict=True)) for values in product(*(grid[k] for k in others))
    ]
