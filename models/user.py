"""A user's own network: ``--model path/to/file.py:NAME`` or ``--model package.module:NAME``.

``NAME`` is an ``nn.Module`` class or a function that returns one; its keyword parameters (with
their defaults and annotations) are what a search may vary. The file is loaded under a module
name of our own, ``fashion_search_user_<hash of its source>``, never under the user's: a pickle
of the network then names that module, which travels with the champion inside its MLflow model
(``search.tracking.packaging``), so it loads where the source file is absent and a ``models`` or
``mynet`` package of the loader cannot shadow it. The file must be self-contained (it may
import installed packages, not files beside it). This module imports only torch.

    config = UserModelConfig("mynet.py:Net", {"width": 64})
    net = build_user_model(config)     # Net(width=64)
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import torch
from torch import nn

PREFIX = "fashion_search_user_"  # the module name a user's file is loaded under, + its hash
KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class UserModelError(ValueError):
    """A ``--model`` that cannot be used; the message is one line naming it."""


@dataclass(frozen=True)
class UserModelConfig:
    arch: ClassVar[str] = "user"
    ref: str  # as given: PATH.py:NAME or package.module:NAME
    params: dict[str, Any] = field(default_factory=dict)  # keyword values for NAME


@dataclass(frozen=True)
class Keyword:
    """One keyword parameter of a user's network."""

    name: str
    default: Any = inspect.Parameter.empty  # empty: none; a space file must give it
    annotation: str = ""  # as written ("int", "float", ...), empty if none

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


def split(ref: str) -> tuple[str, str]:
    where, _, name = ref.rpartition(":")
    if not where or not name.isidentifier():
        raise UserModelError(
            f"--model {ref}: must be PATH.py:NAME or package.module:NAME (an nn.Module class "
            "or a function returning one)"
        )
    return where, name


def source_of(ref: str) -> Path:
    """The file ``ref`` names: ``PATH.py`` as it is, ``package.module`` where it imports from."""
    where, _ = split(ref)
    if where.endswith(".py"):
        path = Path(where)
    else:
        try:
            spec = importlib.util.find_spec(where)
        except (ImportError, ValueError) as exc:
            raise UserModelError(f"--model {ref}: cannot find {where} ({exc})") from None
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            raise UserModelError(f"--model {ref}: no Python file for module {where}")
        path = Path(spec.origin)
    if not path.is_file():
        raise UserModelError(f"--model {ref}: {path} does not exist")
    return path.resolve()


def source_hash(ref: str) -> str:
    """SHA-256 of the network's source file."""
    return hashlib.sha256(source_of(ref).read_bytes()).hexdigest()


def module_of(ref: str) -> ModuleType:
    """The network's file, imported once per process under ``PREFIX + its hash``."""
    path = source_of(ref)
    name = PREFIX + hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before it runs: its classes are pickled by this name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise UserModelError(
            f"--model {ref}: {path.name} does not import ({type(exc).__name__}: {first})"
        ) from None
    return module


def factory_of(ref: str) -> Callable[..., nn.Module]:
    module = module_of(ref)
    _, name = split(ref)
    found = getattr(module, name, None)
    if found is None or not callable(found):
        raise UserModelError(
            f"--model {ref}: {source_of(ref).name} has no class or function {name}"
        )
    return found


def keywords(ref: str) -> dict[str, Keyword]:
    """The keyword parameters of ``ref``'s class (its ``__init__``) or function, in order."""
    factory = factory_of(ref)
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to vary
        return {}
    found = {}
    for p in signature.parameters.values():
        if p.kind in KINDS:
            annotation = p.annotation
            if annotation is inspect.Parameter.empty:
                words = ""
            else:
                words = annotation if isinstance(annotation, str) else annotation.__name__
            found[p.name] = Keyword(p.name, p.default, words)
    return found


def build_user_model(config: UserModelConfig) -> nn.Module:
    """``NAME(**params)``, which must be an ``nn.Module``; raises what the constructor raises."""
    network = factory_of(config.ref)(**config.params)
    if not isinstance(network, nn.Module):
        raise UserModelError(
            f"--model {config.ref}: returned a {type(network).__name__}, not an nn.Module"
        )
    return network


def check_output(network: nn.Module, ref: str) -> None:
    """A (2, 1, 28, 28) batch of images must give (2, 10) logits."""
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            out = network(torch.zeros(2, 1, 28, 28))
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserModelError(
            f"--model {ref}: fails on a (N, 1, 28, 28) batch of images: {first}"
        ) from None
    finally:
        network.train(was_training)
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if shape != (2, 10):
        raise UserModelError(
            f"--model {ref}: maps a (2, 1, 28, 28) batch to {shape}, not (2, 10) logits"
        )
