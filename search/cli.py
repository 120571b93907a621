"""Command-line flags of ``python -m search.run``: parsed into one validated ``RunConfig``.

The flags, their help and their defaults come from the config's fields (``search.config``);
this module adds how each is read (types, choices), the defaults that depend on other flags
(grid mode, threads, the study and experiment names), and the checks argparse cannot do. Bad
values raise ``UsageError`` (one line, exit status 2) instead of argparse's usage dump.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from data.splits import TEST_SIZE
from search import sweep
from search.budget import parse_duration
from search.config import (
    DEFAULT_STUDY,
    FINAL_EPOCHS,
    FINAL_EPOCHS_CUDA,
    RERUNS,
    SECTIONS,
    TRIALS,
    RunConfig,
    StudyConfig,
    default_of,
    flag_of,
    is_flag,
    storage_default,
)
from search.device import will_use_cuda
from search.errors import UserError
from search.names import EXPERIMENT_MAX, STUDY_MAX, check_model_name, check_name
from search.precision import PRECISIONS
from search.samplers import PRUNERS, SAMPLERS

LABELLED = 60_000  # Fashion-MNIST's training file: split into train and validation
MIN_VAL = 10  # one image per class, at the very least
MAX_SEED = 2**31 - 1  # numpy seeds must stay below 2**32 after adding trial numbers
# A run's start (imports, data) and end (test evaluation, pictures, registering) take about
# 20 s on 2 CPU cores: a shorter budget could only be broken.
MIN_BUDGET = 20.0


class UsageError(UserError):
    """Bad command-line input: printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage and exit
        raise UsageError(message)


def number(kind: type, minimum: float, strict: bool) -> Callable[[str], Any]:
    """An argparse type: ``kind`` (int/float) above (``strict``) or at least ``minimum``."""
    words = {
        (int, True): "a positive integer",
        (int, False): f"an integer >= {minimum}",
        (float, True): "a positive number",
        (float, False): f"a number >= {minimum}",
    }
    wanted = words[kind, strict]

    def read(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value

    return read


def duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def share(text: str) -> float:
    """A fraction strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text!r}")
    return value


POSITIVE_INT, POSITIVE_FLOAT = number(int, 0, strict=True), number(float, 0, strict=True)
# How each option is read; options not named here are strings, or flags for booleans.
READ: dict[str, dict[str, Any]] = {
    "trials": {"type": POSITIVE_INT},
    "budget": {"type": duration},
    "timeout": {"type": POSITIVE_FLOAT},
    "reconnect_wait": {"type": POSITIVE_FLOAT},
    "sampler": {"choices": SAMPLERS},
    "pruner": {"choices": PRUNERS},
    "seed": {"type": int},
    "epochs": {"type": POSITIVE_INT},
    "step_images": {"type": POSITIVE_INT},
    "final_epochs": {"type": number(int, 0, strict=False)},
    "reruns": {"type": number(int, 0, strict=False)},
    "final_share": {"type": share},
    "precision": {"choices": PRECISIONS},
    "max_latency": {"type": POSITIVE_FLOAT, "metavar": "MS"},
    "max_params": {"type": POSITIVE_INT, "metavar": "N"},
    "pareto": {"choices": ("latency", "params")},
    "champion_trial": {"type": number(int, 0, strict=False), "metavar": "N"},
    "device": {"choices": None},  # checked by search.device, which knows what exists here
    "train_size": {"type": POSITIVE_INT},
    "val_size": {"type": POSITIVE_INT},
    "test_size": {"type": POSITIVE_INT},
    "workers": {"type": POSITIVE_INT},
    "threads": {"type": POSITIVE_INT},
    "deadline": {"type": float},
    "heartbeat": {"type": POSITIVE_INT},
    "poll_seconds": {"type": POSITIVE_FLOAT},
}
# Defaults that depend on other flags: argparse leaves them None, ``resolve`` fills them in.
LATE = {
    "name",
    "trials",
    "sampler",
    "pruner",
    "final_epochs",
    "reruns",
    "threads",
    "experiment",
    "storage",
}


def build_parser(doc: str) -> Parser:
    """``doc`` is ``search.run``'s docstring: its first paragraph describes, the rest is the
    epilog, so ``--help`` is the documentation."""
    p = Parser(
        prog="python -m search.run",
        description=doc.split("\n\n")[0],
        allow_abbrev=False,  # "--worker 2" must not quietly mean --workers 2
        epilog=doc.split("\n\n", 1)[1],
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(
            prog, max_help_position=32
        ),
    )
    for _, title, cls in SECTIONS:
        section = p.add_argument_group(title)
        for f in filter(is_flag, fields(cls)):
            section.add_argument(flag_of(f), dest=f.name, **_how(f))
    return p


def _how(f) -> dict[str, Any]:
    help_text = f.metadata["help"]
    default = default_of(f)
    shown = help_text.format(default=default)
    if isinstance(default, bool):  # --no-x turns a True off, --x turns a False on
        return {"action": "store_false" if default else "store_true", "help": shown}
    how = {"default": None if f.name in LATE else default, "help": shown, **READ.get(f.name, {})}
    if how.get("choices", ...) is None:
        del how["choices"]
    return how


def parse_args(argv: list[str] | None, doc: str) -> RunConfig:
    """The command line as a ``RunConfig``: parsed, late defaults filled in, checked."""
    values = vars(build_parser(doc).parse_args(argv))
    config = RunConfig(
        **{
            attribute: cls(**{f.name: values[f.name] for f in filter(is_flag, fields(cls))})
            for attribute, _, cls in SECTIONS
        }
    )
    config = resolve(config)
    check(config)
    return config


def from_space(study: StudyConfig) -> StudyConfig:
    """What a space file's top level sets where its flag was not given: a grid (a plain map of
    lists, or ``method: grid``), ``--sampler`` (method), ``--trials`` (run_cap), ``--pruner``
    (early_terminate)."""
    if study.space is None:
        return study
    head = sweep.header(study.space)
    if head.grid:
        if study.grid is not None:
            raise UsageError(f"--space {study.space} is a grid; give it or --grid, not both")
        return replace(study, grid=study.space)
    return replace(
        study,
        sampler=study.sampler or head.method,
        trials=study.trials or head.run_cap,
        pruner=study.pruner or head.pruner,
    )


def resolve(config: RunConfig) -> RunConfig:
    """Fill in the defaults that depend on other flags."""
    config = replace(config, study=from_space(config.study))
    study, grid = config.study, config.study.grid
    sampler = study.sampler or ("grid" if grid else "tpe")
    if sampler == "grid" and not grid:
        raise UsageError("--sampler grid needs --grid FILE (a JSON/YAML map of names to lists)")
    if grid and sampler != "grid":
        raise UsageError(
            f"--grid FILE runs grid mode; it cannot be combined with --sampler {sampler}"
        )
    name = (
        study.name
        if study.name is not None
        else (f"{DEFAULT_STUDY}-grid-{Path(grid).stem}" if grid else DEFAULT_STUDY)
    )
    study = replace(
        study,
        name=name,
        trials=study.trials if study.trials or study.budget else TRIALS,
        sampler=sampler,
        pruner=study.pruner or ("none" if grid else "successive-halving"),
        storage=study.storage or storage_default(),
    )
    training = config.training
    if training.final_epochs is None and (grid or not study.budget):  # a budget: fill it
        on_gpu = will_use_cuda(config.data.device)
        final = 0 if grid else FINAL_EPOCHS_CUDA if on_gpu else FINAL_EPOCHS
        training = replace(training, final_epochs=final)
    if training.reruns is None:
        training = replace(training, reruns=0 if grid else RERUNS)
    workers = config.workers
    if workers.threads is None:
        workers = replace(workers, threads=max(1, (os.cpu_count() or 1) // workers.workers))
    tracking = config.tracking
    if tracking.experiment is None:
        tracking = replace(tracking, experiment=name)
    return replace(config, study=study, training=training, workers=workers, tracking=tracking)


def check(config: RunConfig) -> None:
    """Flags whose limits depend on each other, on the dataset's size (known without reading
    it: 60,000 labelled images) or on this machine, and names, before anything is written."""
    for problem in (*data_problems(config.data), *run_problems(config), *name_problems(config)):
        if problem:
            raise UsageError(problem)


def data_problems(data) -> list[str]:
    room = LABELLED - data.val_size
    return [
        not MIN_VAL <= data.val_size <= LABELLED - MIN_VAL
        and f"--val-size must be in {MIN_VAL}..{LABELLED - MIN_VAL:,}, got {data.val_size}",
        data.train_size is not None
        and data.train_size > room
        and (
            f"--train-size must be at most {room:,} (60,000 labelled images minus --val-size "
            f"{data.val_size:,}), got {data.train_size}"
        ),
        not MIN_VAL <= data.test_size <= TEST_SIZE
        and (
            f"--test-size must be in {MIN_VAL}..{TEST_SIZE:,} (the held-out test file), "
            f"got {data.test_size}"
        ),
    ]


def run_problems(config: RunConfig) -> list[str]:
    cores, threads, budget = os.cpu_count() or 1, config.workers.threads, config.study.budget
    return [
        threads > cores
        and f"--threads must be in 1..{cores} (this machine's CPU cores), got {threads}",
        budget is not None
        and budget < MIN_BUDGET
        and (
            f"--budget {budget:g} s cannot hold a run's start and end (loading, evaluating, "
            f"registering); at least {MIN_BUDGET:g} s"
        ),
        not 0 <= config.study.seed <= MAX_SEED
        and f"--seed must be in 0..{MAX_SEED}, got {config.study.seed}",
    ]


def name_problems(config: RunConfig) -> list[str]:
    problems = [check_name("--study", config.study.name, STUDY_MAX)]
    tracking = config.tracking
    if tracking.enabled:
        explicit = tracking.experiment != config.study.name
        flag = "--experiment" if explicit else "--experiment (the study name)"
        problems += [
            check_name(flag, tracking.experiment, EXPERIMENT_MAX),
            check_model_name(tracking.registered_model),
        ]
    return problems
