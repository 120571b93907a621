"""A user's own network (``--model``), checked once before anything is written, and the names
a space file (or a grid) may give for the network a run trains.

``check`` loads the network (``models.user``), refuses a keyword parameter that would shadow a
training parameter's name or that has no default the space file does not give, builds it at
its defaults (and the file's values for the rest) and requires (N, 1, 28, 28) images to give
(N, 10) logits: every problem is one ``UserModelError`` line, exit 2. ``allowed`` is what each
name may be: the one table's words (``search.params``), or with a user's network the training
words and its own keyword parameters, typed by their annotations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models.user import (
    Keyword,
    UserModelConfig,
    UserModelError,
    build_user_model,
    check_output,
    keywords,
    source_hash,
)
from search.params import PARAMS
from search.space import UserModel
from search.sweep import Range

Check = Callable[[Any], str | None]
TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
}
TRAIN = {p.name: p for p in PARAMS if p.feeds == "train"}


def checking(check: Callable[[Any], bool], wants: str) -> Check:
    return lambda value: None if check(value) else f"must be {wants}"


def keyword_check(keyword: Keyword) -> Check:
    """What a value of ``keyword`` must be: its annotation's type (any value without one)."""
    if keyword.annotation in TYPES:
        return checking(*TYPES[keyword.annotation])
    return lambda value: None


def allowed(model: UserModel | None) -> dict[str, Check]:
    """The names a space file may give, each with what its values must be."""
    if model is None:
        return {
            p.name: checking(*p.grid) for p in PARAMS if p.feeds != "run" and p.name != "model"
        }
    train = {name: checking(*p.grid) for name, p in TRAIN.items()}
    return {**train, **{name: keyword_check(k) for name, k in model.keywords.items()}}


def grid_keys(model: UserModel | None) -> dict[str, tuple] | None:
    """The keys a grid may give with a user's network (``None``: the one table's)."""
    if model is None:
        return None
    keys = {p.name: p.grid for p in PARAMS if p.feeds in ("train", "run")}
    for name, keyword in model.keywords.items():
        check, wants = TYPES.get(keyword.annotation, (lambda v: True, "any value"))
        keys[name] = (check, wants)
    return keys


def load(ref: str) -> UserModel:
    """The network ``ref`` names, with its keyword parameters; a keyword that would shadow a
    training parameter is refused."""
    found = keywords(ref)
    clash = [name for name in found if name in TRAIN or name == "model"]
    if clash:
        raise UserModelError(
            f"--model {ref}: its keyword parameter {clash[0]} has the name of a training "
            "parameter (search.params); rename it"
        )
    return UserModel(ref, found, source_hash(ref))


def check(model: UserModel, ranges: dict[str, Range]) -> None:
    """The network builds, at its defaults and the space file's values for the rest (a range:
    its first choice or low end), and maps (N, 1, 28, 28) images to (N, 10) logits."""
    values = {}
    for name, keyword in model.keywords.items():
        if name in ranges:
            values[name] = representative(ranges[name])
        elif keyword.required:
            raise UserModelError(
                f"--model {model.ref}: its keyword parameter {name} has no default: give it "
                "in --space (a value or a range)"
            )
    try:
        network = build_user_model(UserModelConfig(model.ref, values))
    except UserModelError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise UserModelError(
            f"--model {model.ref}: does not build ({type(exc).__name__}: {first})"
        ) from None
    check_output(network, model.ref)


def representative(given: Range) -> Any:
    d = given.distribution
    if d is None:
        return given.value
    return d.choices[0] if hasattr(d, "choices") else d.low
