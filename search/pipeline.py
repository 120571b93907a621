"""What a run has opened, in one object: ``Run``.

``search.run.main`` reads as prepare -> search -> finish -> summary. ``search.prepare`` checks
every input and builds the ``Run`` (config, inputs, storage, steps, the study's hooks, budget);
opening the study fills in the rest (claim lock, study, plan, artifact store, progress,
objective). The command's steps take the ``Run``; what they call takes only what it uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from data import Splits
from search.budget import END_SECONDS, END_SECONDS_UNTRACKED, Budget
from search.config import RunConfig
from search.hooks import Hooks
from search.limits import Limits
from search.space import SearchSpace
from search.storage_url import StorageURL

ARTIFACTS = "optuna-artifacts"  # optuna-dashboard STORAGE --artifact-dir optuna-artifacts

if TYPE_CHECKING:  # only for the annotations: none of these is needed to build a Run
    import optuna

    from search.objective import Objective
    from search.progress import Progress
    from search.storage import Lock
    from search.study import StudyPlan


@dataclass
class Inputs:
    """What the run works on, all checked before anything was written."""

    grid: dict[str, list] | None
    device: torch.device
    splits: Splits
    storage_url: StorageURL  # --storage, checked (password masked when shown)
    command: str = ""  # as typed, secrets masked: a new study records what created it
    space: SearchSpace = field(default_factory=SearchSpace)  # what trials sample
    limits: Limits = field(default_factory=Limits)  # --max-latency, --max-params


@dataclass
class Run:
    config: RunConfig
    inputs: Inputs
    storage: Any  # an Optuna storage, opened
    steps: int  # reports per trial
    hooks: Hooks  # the study's (MLflow's unless --no-mlflow; the progress bar's once open)
    budget: Budget  # from the process's start (a --workers child: the supervisor's deadline)
    lock: Lock | None = None  # the storage's claim lock
    study: optuna.Study | None = None
    plan: StudyPlan | None = None
    store: Any = None  # the Optuna artifact store (pictures for optuna-dashboard)
    progress: Progress | None = None  # None in a --workers child
    objective: Objective | None = None

    @property
    def splits(self) -> Splits:
        return self.inputs.splits

    @property
    def artifact_dir(self) -> Path:
        """Optuna artifacts live beside a file-based study (else in the working directory)."""
        if self.config.output.artifact_dir:
            return Path(self.config.output.artifact_dir)
        return self.inputs.storage_url.results_dir() / ARTIFACTS

    @property
    def places(self) -> dict[str, Path | None]:
        """What the run writes where (for naming a full disk): the study's file, if it is
        one, the tables beside it, the pictures."""
        url = self.inputs.storage_url
        return {
            "the study": url.path,
            "its tables": url.results_dir(),
            "its pictures": self.artifact_dir,
        }

    @property
    def end_seconds(self) -> float:
        """Kept for the end of the run: evaluation, pictures, and with MLflow registering."""
        return END_SECONDS if self.config.tracking.enabled else END_SECONDS_UNTRACKED
