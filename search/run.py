"""python -m search.run: tune a Fashion-MNIST classifier with Optuna, track it in MLflow.

    python -m search.run --trials 50                       # TPE + pruning, sqlite:///optuna.db
    python -m search.run --sampler grid --grid sweep.json  # RunBuilder sweep, each combo once
    optuna-dashboard sqlite:///optuna.db                   # look at the study

Re-running with the same --study and --storage resumes: trials are added until the study
holds --trials finished (COMPLETE or PRUNED) trials. Exit status: 0 done, 2 bad input,
130 interrupted (Ctrl-C or SIGTERM; the running trial is marked and the summary printed).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna
import torch

from data import DataError, load_splits
from models import Normalized, build_model
from search.cli import UsageError, parse_args
from search.device import DeviceError, describe, resolve_device
from search.figures import confusion, confusion_png, optuna_html, per_class_json, samples_png
from search.grid import GridError, load_grid
from search.objective import Objective
from search.progress import Progress
from search.report import Summary, grid_rows, save_table, state_counts, trials_table
from search.samplers import make_pruner, make_sampler
from search.space import spec_from_params
from search.storage import (
    StorageError,
    claim_lock,
    mask_url,
    open_storage,
    results_dir,
)
from search.study import StudyPlan, finished_count, run_trials
from search.tracking import Tracker, TrackingError, check_reachable
from search.train import evaluate, predict, train
from search.workers import supervise


def prepare(args: argparse.Namespace):
    """Everything that can fail on bad input, before anything is written."""
    grid = load_grid(args.grid) if args.grid else None
    device = resolve_device(args.device)
    splits = load_splits(args.data_dir, device=device, train_size=args.train_size, seed=args.seed)
    if not args.no_mlflow:
        check_reachable(args.tracking_uri or mlflow_default_uri())
    storage = open_storage(args.storage, heartbeat_interval=args.heartbeat)
    return grid, device, splits, storage


def mlflow_default_uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


def make_tracker(args: argparse.Namespace, device: torch.device) -> Tracker | None:
    if args.no_mlflow:
        return None
    try:
        tracker = Tracker(args.tracking_uri, args.experiment or args.study, args.registered_model)
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types; one line for the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrackingError(f"--tracking-uri {args.tracking_uri or 'default'}: {first}") from None
    tags = {"storage": mask_url(args.storage), "sampler": args.sampler, "pruner": args.pruner,
            "seed": str(args.seed), "torch_version": torch.__version__,
            "device": describe(device)}  # fmt: skip
    hidden = ("heartbeat", "worker", "parent_run_id")
    params = {k: v for k, v in vars(args).items() if v is not None and k not in hidden}
    if args.parent_run_id:  # a --workers child: log under the supervisor's parent run
        tracker.parent_id = args.parent_run_id
    else:
        tracker.start_parent(args.study, tags, {**params, "storage": mask_url(args.storage)})
    return tracker


def open_study(args: argparse.Namespace, storage) -> optuna.Study:
    study = optuna.create_study(
        study_name=args.study,
        storage=storage,
        direction="maximize",
        pruner=make_pruner(args.pruner, args.epochs),
        load_if_exists=True,
    )
    # A resumed study must not replay the first seeded samples (optuna#3255): offset the seed.
    study.sampler = make_sampler(args.sampler, args.seed + len(study.get_trials(deepcopy=False)))
    for key, value in (("mode", "grid" if args.grid else "search"), ("epochs", args.epochs)):
        if key not in study.user_attrs:
            study.set_user_attr(key, value)
    return study


def full_params(trial: optuna.trial.FrozenTrial) -> dict:
    return {**trial.user_attrs.get("fixed_params", {}), **trial.params}


def final_model(
    study: optuna.Study, objective: Objective, splits, args
) -> tuple[torch.nn.Module, str]:
    """The best trial's weights: from this process's memory, else retrained (deterministic on
    CPU: same seed, params and epoch count reproduce the same weights)."""
    best = study.best_trial
    if objective.best is not None and objective.best.trial_number == best.number:
        model = build_model(objective.best.spec.model)
        model.load_state_dict(objective.best.state)
        return model.to(splits.device), "(best trial's own weights)"
    if objective.tracker is not None:
        model = objective.tracker.load_checkpoint(best)
        if model is not None:
            return model.to(splits.device), "(best trial's checkpoint from MLflow)"
    epochs = best.user_attrs.get("best_epoch", args.epochs)
    spec = spec_from_params(full_params(best), epochs, args.seed + best.number)
    torch.manual_seed(spec.train.seed)
    model = build_model(spec.model)
    train(model, splits, spec.train)
    return model, f"(retrained: trial #{best.number} ran in an earlier process)"


def finish(study, objective, splits, args, summary: Summary, lock) -> None:
    """Evaluate the winner on the test set, save tables, log results and the champion."""
    summary.counts = state_counts(study)
    out = results_dir(args.storage)
    summary.files += save_table(trials_table(study), out / f"{args.study}-trials")
    if args.grid:
        table = grid_rows(study, load_grid(args.grid))
        summary.files += save_table(table, out / f"{args.study}-runs")
        if not args.quiet and not table.empty:
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    tracker = objective.tracker
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        if tracker is not None:
            tracker.log_results(summary.files, {})
        return
    best = study.best_trial
    summary.best_trial, summary.best_value = best.number, best.value
    summary.best_params = full_params(best)
    model, summary.model_note = final_model(study, objective, splits, args)
    _, summary.test_accuracy = evaluate(model, *splits.test)
    study.set_user_attr("test_accuracy", {"trial": best.number, "value": summary.test_accuracy})
    if tracker is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        files = [*summary.files, *pictures(study, model, splits, Path(tmp))]
        metrics = {"test_accuracy": summary.test_accuracy, "best_val_accuracy": best.value}
        tracker.log_results(files, metrics)
    shipped = Normalized(model, splits.mean, splits.std)
    with lock:  # several workers may end the study together: one registers
        example = (splits.test[0][:2].cpu() * splits.std + splits.mean).numpy()
        summary.tracking = tracker.register_champion(
            study, shipped, summary.test_accuracy, example
        )


def pictures(study: optuna.Study, model: torch.nn.Module, splits, out: Path) -> list[Path]:
    images, labels = splits.test
    predicted = predict(model, images).cpu()
    matrix = confusion(labels, predicted)
    raw = images[:32].cpu() * splits.std + splits.mean  # back to [0, 1] for display
    html, _ = optuna_html(study, out)
    return [confusion_png(matrix, out), per_class_json(matrix, out),
            samples_png(raw, labels[:32].cpu(), predicted[:32], out), html]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    try:
        args = parse_args(argv, __doc__)
        grid, device, splits, storage = prepare(args)
        tracker = make_tracker(args, device)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except (UsageError, GridError, DeviceError, DataError, StorageError, TrackingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    study = open_study(args, storage)
    plan = StudyPlan(target=args.trials, grid=grid, timeout=args.timeout)
    lock = claim_lock(storage, args.storage, args.study)
    if args.worker:
        return work(study, plan, lock, splits, args, grid, tracker)
    total = min(plan.target, _grid_size(grid)) if grid else plan.target
    progress = Progress(total, finished_count(study, plan), args.epochs, args.quiet)
    objective = Objective(splits, args.epochs, args.seed, grid, tracker, progress.on_epoch)
    if not args.quiet:
        print(f"study {args.study!r} on {mask_url(args.storage)}: {args.sampler} sampler, "
              f"{args.pruner} pruner, {describe(device)}, torch {torch.__version__}, "
              f"{args.workers} worker(s) x {args.threads} thread(s)")  # fmt: skip
    summary = Summary(args.study, mask_url(args.storage), {}, 0.0)
    start = time.perf_counter()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if args.workers > 1:
            tick = lambda: after_trial(study, objective, progress, plan)  # noqa: E731
            parent = tracker.parent_id if tracker else None
            argv = sys.argv[1:] if argv is None else argv
            summary.stopped = supervise(argv, args.workers, args.threads, device, parent, tick)
        else:
            after = lambda s: after_trial(s, objective, progress, plan)  # noqa: E731
            summary.stopped = run_trials(study, objective, plan, lock, after)
    except KeyboardInterrupt:
        summary.stopped = "interrupted"
    finally:
        signal.signal(signal.SIGTERM, previous)
        progress.close()
    summary.wall_seconds = time.perf_counter() - start
    finish(study, objective, splits, args, summary, lock)
    if tracker is not None:
        tracker.end_orphans(study)
        tracker.end_parent("KILLED" if summary.stopped == "interrupted" else "FINISHED")
    summary.tracking = tracking_line(args, tracker, summary.tracking)
    print("\n".join(summary.lines()))
    if summary.stopped == "interrupted":
        return 130
    return 1 if summary.stopped.startswith("worker failed") else 0


def work(study, plan: StudyPlan, lock, splits, args, grid, tracker) -> int:
    """A ``--workers`` child: run trials, leave the final evaluation to the supervisor."""
    objective = Objective(splits, args.epochs, args.seed, grid, tracker)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        run_trials(study, objective, plan, lock, tracker.end_orphans if tracker else None)
    except KeyboardInterrupt:
        print(f"worker {os.getpid()}: stopped by signal; its running trial is marked FAIL",
              file=sys.stderr)  # fmt: skip
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def quiet_libraries() -> None:
    """Optuna logs every trial at INFO and MLflow/torch.export narrate the model logging: the
    progress bar and summary say what matters."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for handler in logging.getLogger("optuna").handlers:
        handler.addFilter(_interrupt_without_traceback)
    for name in ("mlflow", "torch._export", "torch.export", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="The number of trials is too small")


def _interrupt_without_traceback(record: logging.LogRecord) -> bool:
    """Optuna logs a trial stopped by Ctrl-C/SIGTERM with a traceback; a user who pressed
    Ctrl-C needs the one line that says which trial was stopped, not where."""
    if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
        record.exc_info = None
    return True


def after_trial(study: optuna.Study, objective: Objective, progress: Progress, plan) -> None:
    progress.after_trial(study, finished_count(study, plan))
    if objective.tracker is not None:
        objective.tracker.end_orphans(study)


def tracking_line(args: argparse.Namespace, tracker: Tracker | None, champion: str) -> str:
    if tracker is None:
        return "MLflow: off (--no-mlflow): nothing was tracked"
    uri = tracker.uri
    ui = (f"open it: mlflow ui --backend-store-uri {uri} --host 127.0.0.1"
          if not uri.startswith("http") else f"open it: {uri}")  # fmt: skip
    return f"MLflow: experiment {args.experiment or args.study!r} at {uri}    {ui}\n{champion}"


def _grid_size(grid: dict[str, list]) -> int:
    size = 1
    for values in grid.values():
        size *= len(values)
    return size


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    raise SystemExit(main())
