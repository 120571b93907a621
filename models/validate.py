"""Shared checks for config dataclasses: one message shape, ``Config.field ... got field=v``."""

from __future__ import annotations


def check(ok: bool, config: object, field: str, rule: str) -> None:
    if not ok:
        value = getattr(config, field)
        raise ValueError(f"{type(config).__name__}.{field} {rule}, got {field}={value!r}")


def check_int(config: object, field: str, low: int, high: int) -> None:
    value = getattr(config, field)
    ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    check(ok, config, field, f"must be an integer in {low}..{high}")


def check_common(config: object) -> None:
    """``batch_norm`` and ``dropout`` mean the same thing in every family."""
    check(isinstance(config.batch_norm, bool), config, "batch_norm", "must be a bool")
    dropout = config.dropout
    ok = isinstance(dropout, (int, float)) and not isinstance(dropout, bool) and 0 <= dropout < 1
    check(ok, config, "dropout", "must be a number in [0, 1)")
