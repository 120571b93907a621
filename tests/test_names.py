"""search/names.py: user-chosen names are checked, and files use a safe form of them."""

from __future__ import annotations

import hashlib

import pytest

from search.names import STEM_MAX, check_model_name, check_name, file_stem


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("fashion-mnist", True),
        ("my study", False),
        ('quote\'s "study"', False),
        ("étude ü", False),
        ("../../escaped", False),
        ("a/b", False),
    ],
)
def test_awkward_names_are_valid_and_their_files_stay_put(name, kept):
    """A safe name is its own stem; any other ends with 8 characters of its SHA-1, so two
    names that make the same safe characters never share a file."""
    assert check_name("--study", name, 512) is None
    stem = file_stem(name)
    assert "/" not in stem and not stem.startswith(".") and len(stem) <= STEM_MAX + 9
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    assert stem == name if kept else stem.endswith(f"-{digest}")


def test_safe_names_keep_their_form_and_different_names_never_share_a_file():
    assert file_stem("fashion-mnist") == "fashion-mnist"
    assert file_stem("a b") != file_stem("a_b") and file_stem("a/b") != file_stem("a_b")
    assert len(file_stem("x" * 600)) <= STEM_MAX + 9


@pytest.mark.parametrize(
    "name, problem",
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("two\nlines", "control characters"),
        ("x" * 513, "513 characters long; at most 512"),
    ],
)
def test_bad_names(name, problem):
    assert problem in check_name("--study", name, 512)


@pytest.mark.parametrize(
    "name, problem",
    [
        ("a/b", "cannot contain '/' or ':'"),
        ("a:b", "cannot contain"),
        ("..", "look like a path"),
        ("", "must not be empty"),
    ],
)
def test_registered_model_names_follow_mlflow(name, problem):
    assert problem in check_model_name(name)
    assert check_model_name("fashion-mnist-classifier") is None
