"""Optuna artifacts: the pictures where optuna-dashboard users look (``--artifact-dir``).

Optuna refuses to change a finished trial, so a trial that beats the study uploads its own
validation confusion matrix and sample predictions while it is still running; at the end the
champion's test-set pictures go on the study. ``optuna-dashboard STORAGE --artifact-dir DIR``
shows both (the trial's on its page, the champion's on the study's).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

if TYPE_CHECKING:  # matplotlib takes half a second to import: only when drawing
    import matplotlib.pyplot as plt

from search.objective import Completed, TrialHooks

SAMPLES = 32  # images in the sample-predictions picture


def open_store(directory: Path) -> FileSystemArtifactStore:
    directory.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(directory))


def pictures(
    predicted: torch.Tensor, split: tuple, mean: float, std: float, name: str
) -> tuple[dict[str, plt.Figure], torch.Tensor]:
    """Confusion matrix and sample predictions for ``split`` (normalized images) given every
    image's predicted class, by file name (``name`` is test or validation); and the counts."""
    from search.figures import confusion, confusion_figure, samples_figure  # matplotlib: here

    images, labels = split
    predicted = predicted.cpu()
    matrix = confusion(labels, predicted)
    raw = images[:SAMPLES].cpu() * std + mean  # back to [0, 1] for display
    prefix = "" if name == "test" else f"{name}_"
    figures = {
        f"{prefix}confusion_matrix.png": confusion_figure(matrix, name),
        f"{name}_samples.png": samples_figure(raw, labels[:SAMPLES].cpu(), predicted[:SAMPLES]),
    }
    return figures, matrix


def upload(store, target: optuna.Study | optuna.Trial, figures: dict[str, plt.Figure]) -> None:
    """Figures as artifacts of a study or a running trial (the store wants files)."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, figure in figures.items():
            path = Path(tmp) / name
            figure.savefig(path, dpi=100)
            upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=target)


def close(figures: dict[str, plt.Figure]) -> None:
    import matplotlib.pyplot as plt

    for figure in figures.values():
        plt.close(figure)


class TrialPictures(TrialHooks):
    """A trial that beats the study uploads its validation pictures while it still runs,
    from its last step's predictions (the test set is for the final model only)."""

    def __init__(self, store, splits) -> None:
        self.store, self.splits = store, splits

    def completed(self, done: Completed) -> None:
        if not done.beats_study:
            return
        s = self.splits
        figures, _ = pictures(done.val_predictions, s.val, s.mean, s.std, "validation")
        upload(self.store, done.trial, figures)
        close(figures)
