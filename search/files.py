"""A JSON or YAML file a user gives (``--grid``, ``--space``), read: a key given twice is
refused (``json`` and PyYAML keep the last silently), and every problem is one line naming
the flag and the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from search.errors import UserError


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


def parse(path: Path, flag: str, error: type[Exception] = UserError) -> Any:
    """A JSON or YAML file's content; ``flag`` names it in the one-line ``error``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{flag} {path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise error(f"{flag} {path}: not a text file (JSON or YAML expected)") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            return _yaml(text)
        return json.loads(text, object_pairs_hook=_unique)
    except RepeatedKey as exc:
        raise error(f"{flag} {path}: the key {exc.key!r} appears twice") from None
    except Exception as exc:  # json and yaml raise different types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise error(f"{flag} {path}: not valid {path.suffix[1:] or 'JSON'}: {first}") from None
