"""python -m search.run: tune a Fashion-MNIST classifier with Optuna, track it in MLflow.

    python -m search.run --trials 50                       # TPE + Hyperband, sqlite:///optuna.db
    python -m search.run --trials 50 --budget 10m          # and end within 10 minutes
    python -m search.run --sampler grid --grid sweep.json  # RunBuilder sweep, each combo once
    optuna-dashboard sqlite:///optuna.db                   # look at the study

A new study's first trial is the seed article's hand-tuned CNN (--no-warm-start skips it).
Each trial trains for --epochs and reports validation accuracy every --step-images training
images, so Hyperband stops bad trials after seconds. When the trials are done, the best
configuration is trained again for --final-epochs on train + validation: that model is the
champion, evaluated once on the held-out test set and registered in MLflow.

Re-running with the same --study and --storage resumes: trials are added until the study
holds --trials finished (COMPLETE or PRUNED) trials. Exit status: 0 done, 2 bad input,
130 interrupted (Ctrl-C or SIGTERM; the running trial is marked and the summary printed).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch

from data import DataError, load_splits
from models import build_model
from models.export import standalone
from search.artifacts import open_store, pictures, upload
from search.budget import (
    END_SECONDS,
    END_SECONDS_UNTRACKED,
    Budget,
    final_epochs_that_fit,
    process_start,
)
from search.cli import UsageError, parse_args
from search.device import DeviceError, describe, resolve_device
from search.final import final_fit
from search.grid import GridError, load_grid
from search.names import file_stem
from search.objective import Objective
from search.progress import Progress
from search.quiet import held_stderr, quiet_libraries
from search.report import Summary, grid_rows, save_table, state_counts, trials_table
from search.samplers import make_pruner, make_sampler
from search.space import WARM_START, spec_from_params
from search.storage import StorageError, check_storage, claim_lock, open_storage, results_dir
from search.study import StudyPlan, finished_count, run_trials
from search.train import evaluate_and_predict, train
from search.urls import TrackingError, check_tracking_uri, mask_url, scrub
from search.workers import STORAGE_ENV, supervise


def prepare(args: argparse.Namespace):
    """Everything that can fail on bad input, before anything is written (the flags' own
    checks ran in the parser): the grid, the device, the tracking URI and the storage (checked,
    not created), then the data (read only)."""
    grid = load_grid(args.grid) if args.grid else None
    device = resolve_device(args.device)
    if not args.no_mlflow:
        check_tracking_uri(args.tracking_uri or mlflow_default_uri())
    check_storage(args.storage)
    splits = load_splits(
        args.data_dir, device=device, train_size=args.train_size, seed=args.seed,
        val_size=args.val_size,
    )  # fmt: skip
    return grid, device, splits


def mlflow_default_uri() -> str:
    import mlflow  # only when tracking: it takes a second to import

    return mlflow.get_tracking_uri()


def make_tracker(args: argparse.Namespace, device: torch.device):
    if args.no_mlflow:
        return None
    from search.tracking import Tracker  # MLflow: imported only when tracking

    uri = args.tracking_uri
    try:
        tracker = Tracker(uri, args.experiment or args.study, args.registered_model)
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types; one line for the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrackingError(
            f"--tracking-uri {mask_url(uri or 'default')}: {scrub(first, uri)}"
        ) from None
    tags = {"storage": mask_url(args.storage), "sampler": args.sampler, "pruner": args.pruner,
            "seed": str(args.seed), "torch_version": torch.__version__,
            "device": describe(device)}  # fmt: skip
    hidden = ("heartbeat", "worker", "parent_run_id", "deadline", "poll_seconds")
    params = {k: v for k, v in vars(args).items() if v is not None and k not in hidden}
    params.update(storage=mask_url(args.storage), tracking_uri=mask_url(tracker.uri))
    if args.parent_run_id:  # a --workers child: log under the supervisor's parent run
        tracker.parent_id = args.parent_run_id
    else:
        tracker.start_parent(args.study, tags, params)
    return tracker


ARTIFACTS = "optuna-artifacts"  # optuna-dashboard STORAGE --artifact-dir optuna-artifacts


def trial_steps(args: argparse.Namespace, splits) -> int | None:
    """Reports per trial: one per --step-images training images (grid mode: one per epoch,
    RunManager's rows). ``None`` means one per epoch."""
    if args.grid:
        return None
    return max(1, round(args.epochs * len(splits.train[1]) / args.step_images))


def open_study(args: argparse.Namespace, storage, steps: int | None) -> optuna.Study:
    study = optuna.create_study(
        study_name=args.study,
        storage=storage,
        direction="maximize",
        pruner=make_pruner(args.pruner, steps or args.epochs),
        load_if_exists=True,
    )
    trials = study.get_trials(deepcopy=False)
    # A resumed study must not replay the first seeded samples (optuna#3255): offset the seed.
    study.sampler = make_sampler(args.sampler, args.seed + len(trials))
    settings = {"mode": "grid" if args.grid else "search", "epochs": args.epochs,
                "steps": steps or args.epochs}  # fmt: skip
    for key, value in settings.items():
        if key not in study.user_attrs:
            study.set_user_attr(key, value)
    if not trials and not args.grid and not args.no_warm_start and not args.worker:
        # The tutorial's hand-tuned network first: the incumbent is never worse than it.
        study.enqueue_trial(WARM_START, user_attrs={"warm_start": "seed article's CNN"})
    return study


def full_params(trial: optuna.trial.FrozenTrial) -> dict:
    return {**trial.user_attrs.get("fixed_params", {}), **trial.params}


def best_spec(best: optuna.trial.FrozenTrial, args: argparse.Namespace):
    steps = best.user_attrs.get("history", [{}])[-1].get("step")
    return spec_from_params(full_params(best), args.epochs, args.seed + best.number, steps)


def champion_model(study, objective, splits, args, summary: Summary, budget: Budget, progress):
    """The final fit of the best configuration (``--final-epochs``, shortened to what the
    budget leaves), or the best trial's own weights."""
    best = study.best_trial
    epochs = args.final_epochs
    if epochs and budget.seconds is not None:
        seconds, images = (best.user_attrs.get(k, 0) for k in ("train_seconds", "train_images"))
        per_epoch = seconds / max(1, images) * (len(splits.train[1]) + len(splits.val[1]))
        end = END_SECONDS_UNTRACKED if args.no_mlflow else END_SECONDS
        epochs = final_epochs_that_fit(per_epoch, epochs, budget.left(), end)
    if not epochs:
        model, summary.model_note = final_model(study, objective, splits, args)
        if args.final_epochs:
            summary.model_note += f" (no time left for --final-epochs {args.final_epochs})"
        return model
    spec = best_spec(best, args)
    tracker = objective.tracker
    if tracker is not None:
        images = len(splits.train[1]) + len(splits.val[1])
        tracker.start_final(best.number, {**full_params(best), "train_images": images}, epochs)

    def on_epoch(m) -> None:
        progress.final_epoch(m, epochs)
        if tracker is not None:
            tracker.log_final_epoch(m)

    start = time.perf_counter()
    model = final_fit(spec, splits, epochs, on_epoch)
    summary.final_seconds = time.perf_counter() - start
    cut = f" of {args.final_epochs} (--budget)" if epochs < args.final_epochs else ""
    summary.model_note = (f"(final fit of trial #{best.number}: {epochs}{cut} epochs on train + "
                          f"validation, {summary.final_seconds:.0f} s)")  # fmt: skip
    return model


def final_model(
    study: optuna.Study, objective: Objective, splits, args
) -> tuple[torch.nn.Module, str]:
    """The best trial's weights: from this process's memory, else retrained (deterministic on
    CPU: same seed, params and step count reproduce the same weights)."""
    best = study.best_trial
    if objective.best is not None and objective.best.trial_number == best.number:
        model = build_model(objective.best.spec.model)
        model.load_state_dict(objective.best.state)
        return model.to(splits.device), "(best trial's own weights)"
    if objective.tracker is not None:
        model = objective.tracker.load_checkpoint(best)
        if model is not None:
            return model.to(splits.device), "(best trial's checkpoint from MLflow)"
    spec = best_spec(best, args)
    torch.manual_seed(spec.train.seed)
    model = build_model(spec.model)
    train(model, splits.train, spec.train)
    return model, f"(retrained: trial #{best.number} ran in an earlier process)"


def finish(study, objective, splits, args, summary: Summary, lock, budget, progress) -> None:
    """Evaluate the winner on the test set, save tables, log results and the champion."""
    summary.counts = state_counts(study)
    out = results_dir(args.storage)
    stem = file_stem(args.study)  # a study name may hold anything; files may not
    summary.files += save_table(trials_table(study), out / f"{stem}-trials")
    if args.grid:
        table = grid_rows(study, load_grid(args.grid))
        summary.files += save_table(table, out / f"{stem}-runs")
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
    registered = tracker.is_champion(args.study, best.number) if tracker else None
    if registered is not None:  # a resumed study whose best trial is already the champion
        model = network_of(tracker.load_version(registered)).to(splits.device)
        summary.model_note = (f"(registered champion version {registered.version}, fitted "
                              "by an earlier run: no new final fit)")  # fmt: skip
    else:
        model = champion_model(study, objective, splits, args, summary, budget, progress)
    _, summary.test_accuracy, predicted = evaluate_and_predict(model, *splits.test)
    study.set_user_attr("test_accuracy", {"trial": best.number, "value": summary.test_accuracy})
    with tempfile.TemporaryDirectory() as tmp:
        shown, matrix = pictures(
            predicted, splits.test, splits.mean, splits.std, "test", Path(tmp)
        )
        upload(objective.artifacts, study, shown)  # the champion's, on the study's page
        if tracker is not None:
            from search.figures import optuna_html, per_class_json  # plotly, matplotlib

            html, _ = optuna_html(study, Path(tmp))
            files = [*summary.files, *shown, per_class_json(matrix, Path(tmp)), html]
            metrics = {"test_accuracy": summary.test_accuracy, "best_val_accuracy": best.value}
            tracker.log_results(files, metrics)
    if tracker is None:
        return
    tracker.end_final(summary.test_accuracy)
    shipped = standalone(model, splits.mean, splits.std)
    with lock:  # several workers may end the study together: one registers
        example = (splits.test[0][:4].cpu() * splits.std + splits.mean).numpy()
        summary.tracking = tracker.register_champion(
            study, shipped, summary.test_accuracy, example
        )


def network_of(shipped: torch.nn.Module) -> torch.nn.Module:
    """A registered standalone model without its ``normalize`` layer: the splits here are
    normalized already."""
    return torch.nn.Sequential(*list(shipped.children())[1:])


def main(argv: list[str] | None = None) -> int:
    started = process_start()  # --budget counts from the start of the process
    quiet_libraries()
    try:
        args = parse_args(argv, __doc__)
        grid, device, splits = prepare(args)
        storage = open_storage(args.storage, heartbeat_interval=args.heartbeat)
        tracker = make_tracker(args, device)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except (UsageError, GridError, DeviceError, DataError, StorageError, TrackingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    quiet_libraries(args.quiet)
    torch.set_num_threads(args.threads)
    steps = trial_steps(args, splits)
    study = open_study(args, storage, steps)
    plan = make_plan(args, grid, splits, make_budget(args, started))
    lock = claim_lock(storage, args.storage, args.study)
    if args.worker:
        return work(study, plan, lock, splits, args, grid, tracker, steps)
    total = min(plan.target, _grid_size(grid)) if grid else plan.target
    progress = Progress(total, finished_count(study, plan), steps or args.epochs, args.quiet)
    objective = Objective(splits, args.epochs, args.seed, grid, tracker, progress.on_step,
                          steps, plan.budget, open_store(artifact_dir(args)))  # fmt: skip
    if not args.quiet:
        print(f"study {args.study!r} on {mask_url(args.storage)}: {args.sampler} sampler, "
              f"{args.pruner} pruner, {describe(device)}, torch {torch.__version__}, "
              f"{args.workers} worker(s) x {args.threads} thread(s)")  # fmt: skip
    summary = Summary(args.study, mask_url(args.storage), {}, 0.0)
    start = time.perf_counter()
    with held_stderr() if args.quiet else contextlib.nullcontext():
        summary.stopped = run_study(study, objective, progress, plan, lock, args, argv, device)
    if summary.stopped == "done" and finished_count(study, plan) < total:
        # Workers stop on their own timeout or budget; they exit 0 all the same.
        summary.stopped = "budget" if args.budget else "timeout" if args.timeout else "done"
    summary.ended = ended_by(summary.stopped, args)
    with held_stderr():  # MLflow narrates registering; the summary says it in one line
        finish(study, objective, splits, args, summary, lock, plan.budget, progress)
    progress.close()
    summary.wall_seconds = time.perf_counter() - start
    if tracker is not None:
        tracker.end_orphans(study)
        tracker.end_parent("KILLED" if summary.stopped == "interrupted" else "FINISHED")
    summary.tracking = tracking_line(args, tracker, summary.tracking)
    print("\n".join(summary.lines()))
    if summary.stopped == "interrupted":
        return 130
    return 1 if summary.stopped.startswith("worker failed") else 0


def run_study(study, objective, progress, plan, lock, args, argv, device) -> str:
    """The trials, here or in ``--workers`` processes; returns why they stopped."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if args.workers > 1:
            tick = lambda: after_trial(study, objective, progress, plan)  # noqa: E731
            tracker = objective.tracker
            parent = tracker.parent_id if tracker else None
            argv = sys.argv[1:] if argv is None else argv
            deadline = time.time() + plan.budget.left() if args.budget else None
            urls = {STORAGE_ENV: args.storage}
            if tracker is not None:
                urls["MLFLOW_TRACKING_URI"] = tracker.uri
            return supervise(argv, args.workers, args.threads, device, parent, tick, urls,
                             deadline, args.poll_seconds)  # fmt: skip
        after = lambda s: after_trial(s, objective, progress, plan)  # noqa: E731
        return run_trials(study, objective, plan, lock, after)
    except KeyboardInterrupt:
        return "interrupted"
    finally:
        signal.signal(signal.SIGTERM, previous)


def artifact_dir(args: argparse.Namespace) -> Path:
    """Optuna artifacts live beside a file-based study (else in the working directory)."""
    return Path(args.artifact_dir) if args.artifact_dir else results_dir(args.storage) / ARTIFACTS


def make_budget(args: argparse.Namespace, started: float) -> Budget:
    if args.deadline is not None:  # a --workers child: the supervisor's deadline
        return Budget(args.deadline - time.time())
    return Budget(args.budget, start=started)


def make_plan(args: argparse.Namespace, grid, splits, budget: Budget) -> StudyPlan:
    train_images = len(splits.train[1])
    return StudyPlan(
        target=args.trials,
        grid=grid,
        timeout=args.timeout,
        budget=budget,
        trial_images=args.epochs * train_images,
        final_images=args.final_epochs * (train_images + len(splits.val[1])),
        poll_seconds=args.poll_seconds,
        end_seconds=END_SECONDS_UNTRACKED if args.no_mlflow else END_SECONDS,
    )


def ended_by(stopped: str, args: argparse.Namespace) -> str:
    """What ended the study, in the words of the flag that did it."""
    if stopped == "done":
        return f"ended by --trials {args.trials}" if not args.grid else "grid done"
    if stopped == "budget":
        return f"ended by --budget {args.budget:g} s: no time for another trial"
    if stopped == "timeout":
        return f"ended by --timeout {args.timeout:g} s"
    return stopped


def work(study, plan: StudyPlan, lock, splits, args, grid, tracker, steps) -> int:
    """A ``--workers`` child: run trials, leave the final evaluation to the supervisor."""
    objective = Objective(splits, args.epochs, args.seed, grid, tracker, None, steps, plan.budget,
                          open_store(artifact_dir(args)))  # fmt: skip
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with held_stderr():  # a worker is quiet; its chatter shows only if it fails
            run_trials(study, objective, plan, lock, tracker.end_orphans if tracker else None)
    except KeyboardInterrupt:
        print(f"worker {os.getpid()}: stopped by signal; its running trial is marked FAIL",
              file=sys.stderr)  # fmt: skip
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def after_trial(study: optuna.Study, objective: Objective, progress: Progress, plan) -> None:
    progress.after_trial(study, finished_count(study, plan))
    if objective.tracker is not None:
        objective.tracker.end_orphans(study)


def tracking_line(args: argparse.Namespace, tracker, champion: str) -> str:
    if tracker is None:
        return "MLflow: off (--no-mlflow): nothing was tracked"
    uri = mask_url(tracker.uri)
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
