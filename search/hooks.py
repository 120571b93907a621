"""The seams between the search and what watches it: a trial's hooks and the study's hooks.

As Optuna's callbacks do for ``study.optimize``, the search tells whoever listens what happens
and never names them: ``TrialHooks`` hear of each trial (its start, every step, its end, its
completion), ``StudyHooks`` of the study as a whole (opened, a trial finished, the end of the
study: the re-runs, the final fit, the test results, the registration, the close) and may
answer the few questions only they can (is this trial already the registered champion? where
are its weights?). The MLflow side of both lives in ``search.tracking``; the progress bar and
the pictures are hooks too. Tracking off means its hooks are absent: ``Hooks`` of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch
from torch import nn

from search.space import TrialSpec
from search.train import StepMetrics

if TYPE_CHECKING:
    from data import Splits


@dataclass
class Completed:
    """A complete trial, as the hooks see it."""

    trial: optuna.Trial
    value: float
    spec: TrialSpec
    state: dict[str, torch.Tensor]  # weights on the CPU
    val_predictions: torch.Tensor  # on the whole validation split
    beats_study: bool  # better than every complete trial so far, in any worker


class TrialHooks:
    """Called around each trial; every method does nothing unless overridden."""

    def started(self, trial: optuna.Trial, params: dict[str, Any]) -> None: ...

    def step(self, trial: optuna.Trial, metrics: StepMetrics) -> None: ...

    def ended(
        self, trial: optuna.Trial, state: str, value: float | None, killed: bool
    ) -> None: ...

    def completed(self, done: Completed) -> None: ...


@dataclass
class Results:
    """What the end of a study found, for the record: metrics, tables, pictures."""

    metrics: dict[str, float] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)  # matplotlib figures by file name
    matrix: torch.Tensor | None = None  # the test confusion counts


@dataclass
class Crowned:
    """The champion, scored: the study and trial it comes from, its network (normalized images
    in), its test accuracy, and the splits it was trained and scored on."""

    study: optuna.Study
    best: optuna.trial.FrozenTrial
    model: nn.Module
    test_accuracy: float
    splits: Splits
    forced: bool = False  # registered whatever the current champion (--champion-trial)


Weights = tuple[nn.Module, str]  # a network and how it was obtained, in the summary's words


@dataclass
class FinalFit:
    """A trained final fit: the trial it fits, the configuration it trained, the network,
    and the summary's words for it."""

    trial: optuna.trial.FrozenTrial
    spec: TrialSpec
    model: nn.Module
    note: str


class StudyHooks:
    """Called as a study is opened, after each trial, through the end of the study and as the
    run closes. Events do nothing unless overridden; questions answer ``None`` (not known
    here)."""

    # --- the study --------------------------------------------------------------------------

    def joined(self, study: optuna.Study) -> None:
        """Under the claim lock, once the study is open."""

    def resumed(self, study: optuna.Study, quiet: bool) -> None:
        """Before the trials of a person's run (not a ``--workers`` child)."""

    def trial_hooks(self) -> list[TrialHooks]:
        return []

    def after_trial(self, study: optuna.Study) -> None: ...

    def worker_tracking(self) -> tuple[str | None, str | None] | None:
        """What ``--workers`` children inherit: (parent run id, tracking URI)."""

    # --- the end of the study ---------------------------------------------------------------

    def taken_over(self, study: optuna.Study, holder: str) -> None:
        """The end of ``study`` was claimed by ``holder`` (``host:pid``), which left it
        unfinished (it died): what it left open can be ended."""

    def rerun_started(self, trial: optuna.trial.FrozenTrial) -> None: ...

    def rerun_done(self, trial: optuna.trial.FrozenTrial, seed: int, value: float) -> None: ...

    def registered(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> Weights | None:
        """The registered champion's network, if it already is ``trial`` of ``study``."""

    def weights(self, trial: optuna.trial.FrozenTrial) -> Weights | None:
        """``trial``'s own trained weights, if kept."""

    def fitted(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> Weights | None:
        """A final fit of ``trial`` that an earlier process finished and kept, but did not
        register before it died."""

    def final_started(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, params: dict, epochs: float
    ) -> None: ...

    def final_epoch(self, metrics: StepMetrics, epochs: float) -> None: ...

    def final_fitted(self, study: optuna.Study, fit: FinalFit) -> None:
        """The final fit is trained (not yet scored or registered)."""

    def results(self, study: optuna.Study, results: Results) -> None: ...

    def register(self, crowned: Crowned) -> str | None:
        """Register the champion; the summary's line about it."""

    # --- the close ---------------------------------------------------------------------------

    def closed(self, study: optuna.Study, status: str | None) -> None:
        """The run is over: ``status`` FINISHED or KILLED, ``None`` when another process ends
        the study."""

    def lost(self) -> None:
        """The storage server stayed away: the run stops here."""

    def summary_line(self, registered: str) -> str | None: ...

    def failed(self) -> bool | None:
        """Whether part of the record is missing (the exit status is then 1)."""


class Hooks(StudyHooks):
    """Several ``StudyHooks`` as one, in order: an event goes to each (events answer
    nothing); a question goes to each until one answers, so the first that knows answers it
    (this process's own weights before a download of the same from MLflow)."""

    def __init__(self, hooks: list[StudyHooks] | tuple = ()) -> None:
        self.hooks = list(hooks)

    def add(self, hook: StudyHooks) -> None:
        self.hooks.append(hook)

    def trial_hooks(self) -> list[TrialHooks]:
        return [t for hook in self.hooks for t in hook.trial_hooks()]

    def __getattribute__(self, name: str):
        if name.startswith("_") or name in ("hooks", "add", "trial_hooks"):
            return object.__getattribute__(self, name)
        methods = [getattr(hook, name) for hook in object.__getattribute__(self, "hooks")]

        def each(*args, **kwargs):
            for method in methods:
                answer = method(*args, **kwargs)
                if answer is not None:
                    return answer
            return None

        return each
