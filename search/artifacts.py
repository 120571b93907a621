"""Optuna artifacts: the pictures where optuna-dashboard users look (``--artifact-dir``).

Optuna refuses to change a finished trial, so a trial that beats the study uploads its own
validation confusion matrix and sample predictions while it is still running; at the end the
champion's test-set pictures go on the study. ``optuna-dashboard STORAGE --artifact-dir DIR``
shows both (the trial's on its page, the champion's on the study's).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from search.train import predict

SAMPLES = 32  # images in the sample-predictions picture


def open_store(directory: Path) -> FileSystemArtifactStore:
    directory.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(directory))


def pictures(
    model: torch.nn.Module | torch.Tensor,
    split: tuple,
    mean: float,
    std: float,
    name: str,
    out: Path,
) -> tuple[list[Path], torch.Tensor]:
    """Confusion matrix and sample predictions of ``model`` on ``split`` (normalized images),
    named after ``name`` (test, validation), written to ``out``; also returns the counts.
    ``model`` may be the predictions themselves, when they are at hand."""
    from search.figures import confusion, confusion_png, samples_png  # matplotlib: only here

    images, labels = split
    predicted = model if isinstance(model, torch.Tensor) else predict(model, images)
    predicted = predicted.cpu()
    matrix = confusion(labels, predicted)
    raw = images[:SAMPLES].cpu() * std + mean  # back to [0, 1] for display
    paths = [confusion_png(matrix, out, name),
             samples_png(raw, labels[:SAMPLES].cpu(), predicted[:SAMPLES], out, name)]  # fmt: skip
    return paths, matrix


def upload(store, target: optuna.Study | optuna.Trial, paths: list[Path]) -> None:
    for path in paths:
        upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=target)


def upload_trial_pictures(store, trial: optuna.Trial, predicted: torch.Tensor, splits) -> None:
    """The running trial's validation pictures from its last step's predictions (the test set
    is for the final model only)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths, _ = pictures(predicted, splits.val, splits.mean, splits.std, "validation",
                            Path(tmp))  # fmt: skip
        upload(store, trial, paths)
