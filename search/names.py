"""User-chosen names (``--study``, ``--experiment``, ``--registered-model``): checked before
anything is written, and turned into safe file names for the files written beside a study.

A name that Optuna or MLflow would refuse, or that cannot be printed on one line, is a usage
error. A name that is valid but awkward in a file name (spaces, quotes, slashes, unicode) still
works: files use ``file_stem(name)``, which keeps letters, digits, ``.``, ``_`` and ``-``, and
adds a short hash of the real name when it had to change anything, so two names never share a
file and nothing is ever written outside the directory it is meant for.
"""

from __future__ import annotations

import hashlib
import posixpath
import re

STUDY_MAX = 512  # Optuna's study_name column (VARCHAR(512) on every RDB storage)
EXPERIMENT_MAX = 500  # MLflow's MAX_EXPERIMENT_NAME_LENGTH
MODEL_MAX = 256  # MLflow's registered_models.name column
STEM_MAX = 80  # a file name stem that leaves room for suffixes on every file system
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def check_name(flag: str, name: str, limit: int) -> str | None:
    """What is wrong with ``name`` as ``flag``'s value, or ``None``."""
    if not name.strip():
        return f"{flag} must not be empty"
    if _CONTROL.search(name):
        return f"{flag} must not contain control characters (newlines, tabs), got {name!r}"
    if len(name) > limit:
        return f"{flag} is {len(name)} characters long; at most {limit} are allowed"
    return None


def check_model_name(name: str) -> str | None:
    """MLflow's rules for a registered model name, said before MLflow is asked."""
    problem = check_name("--registered-model", name, MODEL_MAX)
    if problem:
        return problem
    if "/" in name or ":" in name:
        return f"--registered-model cannot contain '/' or ':', got {name!r}"
    normal = posixpath.normpath(name)
    if normal != name or normal.startswith("."):
        return f"--registered-model must not look like a path, got {name!r}"
    return None


def file_stem(name: str) -> str:
    """A file-name-safe form of ``name``: itself when already safe, else the safe characters
    and an 8-character hash of the whole name."""
    safe = _UNSAFE.sub("_", name).lstrip(".")[:STEM_MAX]
    if safe == name:
        return name
    return f"{safe}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
