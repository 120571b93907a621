"""The first step of a run: every input checked before anything is written, then the study
opened with its hooks around it.

``prepare`` reads the flags (or a ``--workers`` child's configuration), the grid, the device,
the tracking URI and the storage (checked, not created), the data (read only) and a resumed
study's settings; then opens the storage and MLflow (``search.tracking``, unless
``--no-mlflow``). ``open_run`` opens the study under the claim lock (processes started
together create it and enqueue the warm start once), its plan, the pictures' store, the
progress bar (not in a ``--workers`` child) and the objective with its hooks.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from dataclasses import replace

import optuna
import torch

from data import load_splits
from search import network, precision, sweep
from search.artifacts import TrialPictures, open_store
from search.budget import Budget
from search.cli import parse_args
from search.config import RunConfig
from search.device import describe, resolve_device
from search.feasible import check_grid
from search.grid import grid_size, load_grid
from search.hooks import Hooks, StudyHooks, TrialHooks
from search.limits import Limits, check_limits
from search.objective import Objective, OwnWeights, TrialSettings
from search.pareto import ChampionTrialError, check_champion_trial
from search.pipeline import Inputs, Run
from search.progress import Progress
from search.quiet import quiet_libraries
from search.space import SearchSpace, UserModel, space_name
from search.storage import claim_lock, open_storage
from search.storage_url import StorageURL
from search.study import (
    SPACE_KEY,
    check_resume,
    finished_count,
    open_study,
    plan_for,
    study_settings,
    trial_steps,
)
from search.urls import check_tracking_uri, mask_url
from search.workers import child_config, die_with_supervisor


def prepare(argv: list[str] | None, started: float, doc: str) -> Run:
    """The flags (``doc``: the command's help), the grid, the device, the tracking URI and the
    storage (checked, not created), the data (read only), a resumed study's settings; then the
    storage opened and MLflow connected."""
    config = child_config() or parse_args(argv, doc)
    inputs = check_inputs(config)
    config = with_precision(config, inputs.device)
    inputs.command = command_line(sys.argv[1:] if argv is None else argv)
    wait = config.study.reconnect_wait
    storage = open_storage(inputs.storage_url, config.workers.heartbeat, wait)
    steps = trial_steps(config, len(inputs.splits.train[1]))
    space = {**inputs.space.record(), **inputs.limits.record(), "pareto": config.study.pareto}
    check_resume(storage, config.study.name, config.training.epochs, steps, space)
    if config.study.champion_trial is not None:
        chosen(storage, config.study.name, config.study.champion_trial)
    hooks = Hooks(tracking_hooks(config, inputs.device))
    return Run(config, inputs, storage, steps, hooks, run_budget(config, started))


def with_precision(config: RunConfig, device: torch.device) -> RunConfig:
    """``--precision auto`` decided for this process and device (``search.precision``): the
    study, MLflow and ``--workers`` children see what was chosen."""
    asked = config.training.precision
    chosen = precision.choose(asked, device, precision.cpu_flags(), precision.bf16_is_faster)
    return replace(config, training=replace(config.training, precision=chosen))


def chosen(storage, name: str, number: int) -> None:
    """``--champion-trial N``: a complete trial of an existing study, or one line."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise ChampionTrialError(f"--champion-trial {number}: no --study {name!r} yet") from None
    check_champion_trial(study, number)


def check_inputs(config: RunConfig) -> Inputs:
    study = config.study
    model = network.load(study.model) if study.model else None
    grid = load_grid(study.grid, *grid_source(config, model)) if study.grid else None
    device = resolve_device(config.data.device)
    space = search_space(config, model, space_name(device.type))
    if config.tracking.enabled:
        from search.tracking.client import default_uri  # MLflow: only when tracking

        check_tracking_uri(config.tracking.uri or default_uri())
    storage_url = StorageURL.parse(config.study.storage)
    storage_url.check()
    data = config.data
    splits = load_splits(
        data.data_dir,
        device=device,
        train_size=data.train_size,
        seed=config.study.seed,
        val_size=data.val_size,
        test_size=data.test_size,
    )
    if grid is not None:  # a value that can never run here (device, batch vs. data) is refused
        check_grid(grid, len(splits.train[1]), config.study.grid)
    limits = Limits(config.study.max_latency, config.study.max_params)
    check_limits(limits, space)  # a limit the space cannot meet: one line
    return Inputs(grid, device, splits, storage_url, space=space, limits=limits)


def grid_source(config: RunConfig, model: UserModel | None) -> tuple[str, dict | None]:
    """The flag a grid came from (``--space`` when its file is one), and its keys."""
    flag = "--space" if config.study.grid == config.study.space else "--grid"
    return flag, network.grid_keys(model)


def search_space(config: RunConfig, model: UserModel | None, device: str) -> SearchSpace:
    """The space trials sample: a space file's ranges (not in grid mode) and a user's
    network, checked (it builds, and maps images to 10 logits)."""
    study, found = config.study, None
    if study.space and not config.grid_mode:
        named = f"--model {model.ref}" if model is not None else ""
        found = sweep.sweep(study.space, network.allowed(model), named)
    if model is not None:
        network.check(model, found.params if found is not None else {})
    return SearchSpace(device, found, model)


def command_line(argv: list[str]) -> str:
    """The command as a person would retype it, every URL's password masked
    (``--storage=URL`` too)."""
    masked = [
        f"{a.partition('=')[0]}={mask_url(a.partition('=')[2])}"
        if a.startswith("--") and "=" in a
        else mask_url(a)
        for a in argv
    ]
    return shlex.join(["python", "-m", "search.run", *masked])


def tracking_hooks(config: RunConfig, device: torch.device) -> list[StudyHooks]:
    """MLflow's hooks for this run; none with ``--no-mlflow`` (MLflow is not even imported)."""
    if not config.tracking.enabled:
        return []
    from search.tracking.hooks import open_for_run

    return [open_for_run(config, describe(device))]


def run_budget(config: RunConfig, started: float) -> Budget:
    if config.workers.deadline is not None:  # a --workers child: the supervisor's deadline
        return Budget(config.workers.deadline - time.time())
    return Budget(config.study.budget, start=started)


def open_run(run: Run) -> None:
    """The study (opened under the claim lock), its plan, the pictures' store, the progress
    bar (not in a ``--workers`` child), the objective with its hooks, and the study's hooks
    in the order they answer: the progress bar, this process's own weights, then MLflow's."""
    config, lead = run.config, not run.config.workers.worker
    quiet_libraries(config.output.quiet)
    if not lead:
        die_with_supervisor()
    torch.set_num_threads(config.workers.threads)
    run.lock = claim_lock(run.storage, run.inputs.storage_url, config.study.name)
    space, images = space_name(run.inputs.device.type), len(run.splits.train[1])
    settings = study_settings(config.study, config.training.epochs, run.steps, images, space)
    settings["command"] = run.inputs.command
    settings[SPACE_KEY] = {
        **run.inputs.space.record(),
        **run.inputs.limits.record(),
        "pareto": config.study.pareto,
    }
    with run.lock:
        run.study = open_study(config.study, run.storage, settings, not lead, run.inputs.space)
        run.hooks.joined(run.study)
    if lead:
        run.hooks.resumed(run.study, config.output.quiet)
    url = run.inputs.storage_url
    run.plan = plan_for(
        config, run.splits, run.inputs.grid, run.budget, run.end_seconds, url.journal
    )
    run.store = open_store(run.artifact_dir)
    hooks: list[TrialHooks] = [*run.hooks.trial_hooks(), TrialPictures(run.store, run.splits)]
    first: list[StudyHooks] = []
    if lead:
        done = finished_count(run.study, run.plan)
        run.progress = Progress(total_trials(run), done, run.steps, config.output.quiet)
        hooks.append(run.progress)
        first.append(run.progress)
        if hasattr(run.storage, "reconnect"):  # a database server: its blinks on the bar
            run.storage.reconnect.notify = run.progress.storage_wait
    run.objective = objective(run, hooks)
    run.hooks = Hooks([*first, OwnWeights(run.objective), *run.hooks.hooks])


def objective(run: Run, hooks: list[TrialHooks]) -> Objective:
    config = run.config
    settings = TrialSettings(
        epochs=config.training.epochs,
        steps=None if config.grid_mode else run.steps,
        seed=config.study.seed,
        grid=run.inputs.grid,
        # a resume on another device keeps the study's own ranges
        space=replace(run.inputs.space, device=run.study.user_attrs.get("space", "cpu")),
        precision=config.training.precision,
        limits=run.inputs.limits,
        pareto=config.study.pareto,
        pareto_pruning=config.study.pruner != "none",
    )
    return Objective(run.splits, settings, hooks, run.budget)


def total_trials(run: Run) -> int | None:
    """Finished trials this run works towards (``None``: no limit, the budget ends it)."""
    grid, target = run.inputs.grid, run.plan.target
    return min(target or math.inf, grid_size(grid)) if grid else target
