"""What a person reads after a study: the trials table, the RunManager table, the summary."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from data.splits import TEST_SIZE
from search.config import RunConfig
from search.grid import run_table
from search.names import file_stem
from search.pareto import front_lines, most_accurate
from search.space import full_params
from search.study import CANNOT_RUN_STREAK, Ended, Stop
from search.urls import mask_url

if TYPE_CHECKING:  # pandas takes half a second to import: only where a table is built
    import pandas as pd

    from search.pipeline import Inputs


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """``study.trials_dataframe()`` plus durations in seconds, without the bulky history."""
    attrs = (
        "number",
        "value",
        "state",
        "params",
        "user_attrs",
        "datetime_start",
        "datetime_complete",
        "duration",
    )
    frame = study.trials_dataframe(attrs=attrs)
    if frame.empty:
        return frame
    import pandas as pd

    # A study whose trials never ran (all waiting) has no duration at all: not a timedelta column.
    frame["duration_seconds"] = pd.to_timedelta(frame["duration"]).dt.total_seconds()
    return frame.drop(columns=[c for c in frame.columns if c == "user_attrs_history"])


def save_table(frame: pd.DataFrame, stem: Path) -> list[Path]:
    """Save as ``stem.csv`` and ``stem.json`` (RunManager.save's pair of files)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, js = stem.with_name(stem.name + ".csv"), stem.with_name(stem.name + ".json")
    frame.to_csv(csv, index=False)
    records = json.loads(frame.to_json(orient="records", date_format="iso"))
    js.write_text(json.dumps(records, indent=2, ensure_ascii=False))
    return [csv, js]


def save_tables(study: optuna.Study, inputs: Inputs, config: RunConfig) -> list[Path]:
    """The trials table, and in grid mode RunManager's (also printed), beside the study."""
    out, grid = inputs.storage_url.results_dir(), inputs.grid
    stem = file_stem(config.study.name)  # a study name may hold anything; files may not
    files = save_table(trials_table(study), out / f"{stem}-trials")
    if grid:
        table = grid_rows(study, grid)
        files += save_table(table, out / f"{stem}-runs")
        if not config.output.quiet and not table.empty:
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return files


def grid_rows(study: optuna.Study, grid: dict[str, list]) -> pd.DataFrame:
    """RunManager rows for every finished grid trial: run = combination's place in the product."""
    from search.grid import run_number

    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        combo = tuple((k, t.params.get(k)) for k in grid)
        run_duration = 0.0
        for h in t.user_attrs.get("history", []):
            run_duration += h["step_seconds"]  # grid mode reports once per epoch
            rows.append(
                {
                    "run": run_number(grid, dict(combo)),
                    "epoch": round(h["epoch"]),
                    "loss": h["train_loss"],
                    "accuracy": h["train_accuracy"],
                    "epoch duration": h["step_seconds"],
                    "run duration": run_duration,
                    **dict(combo),
                }
            )
    return run_table(rows, list(grid))


@dataclass
class Summary:
    study_name: str
    storage: str  # masked
    counts: dict[str, int]
    ended: str  # what ended the study, in the words of the flag that did it
    wall_seconds: float
    best_trial: int | None = None
    best_params: dict = field(default_factory=dict)  # the winner's
    best_value: float | None = None
    test_accuracy: float | None = None
    test_images: int = TEST_SIZE
    model_note: str = ""
    winner: str = ""  # search.winner's line: what was chosen over what, and its noise
    elsewhere: str = ""  # who else is ending the study (search.ending), if not this run
    taken_from: str = ""  # who left the end of the study unfinished (it died), if anyone
    verdict: str = ""  # why the exit status is 1 though the study ended, if it is
    precision: str = ""  # bf16 or fp32, as decided for this run (search.precision)
    costs: str = ""  # the champion's latency and size beside the limits (search.limits)
    front: list[str] = field(default_factory=list)  # a Pareto study's front (search.pareto)

    @property
    def precision_words(self) -> str:
        """Said on every run: the same command trains in bf16 on one CPU and fp32 on another,
        and figures from the two are not the same measurement."""
        words = {"bf16": "bf16 autocast", "fp32": "fp32"}.get(self.precision)
        return f", {words}" if words else ""

    tracking_line: str = ""  # MLflow's, or that it is off
    files: list[Path] = field(default_factory=list)

    def lines(self) -> list[str]:
        c = self.counts
        out = [
            f"study {self.study_name!r}: {c.get('COMPLETE', 0)} complete, "
            f"{c.get('PRUNED', 0)} pruned, {c.get('FAIL', 0)} failed "
            f"({self.ended}; {self.wall_seconds:.0f} s this run{self.precision_words})",
        ]
        if self.best_trial is None:
            out.append("no trial has completed yet: nothing to evaluate")
        else:
            out.append(f"best trial #{self.best_trial}: val_accuracy {self.best_value:.4f}")
            out += self.front
            if self.winner:
                out.append(f"winner: {self.winner}")
            out.append(
                "winner's params: "
                + ", ".join(f"{k}={_fmt(v)}" for k, v in self.best_params.items())
            )
            if self.test_accuracy is not None:
                test = (
                    f"test_accuracy (held-out {self.test_images:,} images): "
                    f"{self.test_accuracy:.4f}"
                )
                out.append(f"{test} {self.model_note}")
            if self.costs:
                out.append(self.costs)
            if self.elsewhere:
                out.append(self.elsewhere)
            if self.taken_from:
                out.append(
                    f"the end of this study was left unfinished by {self.taken_from}, which "
                    "is gone: finished here"
                )
        if self.verdict:
            out.append(self.verdict)
        out.append(f"study: {self.storage}    open it: optuna-dashboard {self.storage}")
        if self.tracking_line:
            out.append(self.tracking_line)
        out += [f"saved: {p}" for p in self.files]
        return out


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def summary_of(
    config: RunConfig, study: optuna.Study, stop: Stop, seconds: float, outcome, tracking: str
) -> Summary:
    """The summary of a run: ``outcome`` is ``search.finish.Outcome`` (files, choice, the winning
    trial, the champion's test accuracy and how it was obtained)."""
    best = outcome.best
    return Summary(
        study_name=config.study.name,
        storage=mask_url(config.study.storage),
        counts=state_counts(study),
        ended=ended_by(stop, config),
        wall_seconds=seconds,
        best_trial=most_accurate(study).number if best else None,
        best_value=most_accurate(study).values[0] if best else None,
        best_params=full_params(best) if best else {},
        test_accuracy=outcome.test_accuracy,
        test_images=config.data.test_size,
        model_note=outcome.note,
        winner=outcome.choice.line() if outcome.choice else "",
        elsewhere=outcome.elsewhere,
        taken_from=outcome.taken_from,
        precision=config.training.precision,
        costs=getattr(outcome, "costs", ""),
        front=front_lines(study, config.study.pareto) if config.study.pareto and best else [],
        tracking_line=tracking,
        files=outcome.files,
    )


def verdict(status: int, stop: Stop) -> str:
    """The summary's line for an exit status of 1 that the study's end does not explain."""
    if status != 1 or stop.exit_status == 1:
        return ""
    return "no champion: no trial of the study has completed (exit status 1)"


def ended_by(stop: Stop, config: RunConfig) -> str:
    """What ended the study, in the words of the flag that did it."""
    why = stop.why
    if why is Ended.DONE:
        return "grid done" if config.grid_mode else f"ended by --trials {config.study.trials}"
    if why is Ended.BUDGET:
        return f"ended by --budget {config.study.budget:g} s: no time for another trial"
    if why is Ended.TIMEOUT:
        return f"ended by --timeout {config.study.timeout:g} s"
    if why is Ended.CANNOT_RUN:
        return f"stopped: {CANNOT_RUN_STREAK} trials in a row could not run ({stop.detail})"
    if why is Ended.WORKER_FAILED:
        return f"worker failed ({stop.detail})"
    if why is Ended.DISK_FULL:
        return f"stopped {stop.detail}: the disk is full (see the error above)"
    if why is Ended.INTERRUPTED and stop.detail:
        return f"interrupted {stop.detail}: the same command finishes the job"
    return why.value
