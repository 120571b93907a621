"""The best trial's weights in MLflow, wherever they were trained.

A trial that beats every complete trial of the study stores its weights in its own run as
``checkpoint/checkpoint.pt`` (model family, config and state dict), so whichever process ends
the study can use the winner without retraining it (``--final-epochs 0``). A final fit keeps
its weights the same way, with the number of views its champion averages (``ViewAverage``).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

import mlflow
import torch
from mlflow import MlflowClient

from models import ViewAverage, build_model, config_from_dict
from search.space import TrialSpec

PATH = "checkpoint/checkpoint.pt"


class CheckpointStore:
    def __init__(self, client: MlflowClient) -> None:
        self.client = client

    def save(
        self, run_id: str, spec: TrialSpec, state: dict[str, torch.Tensor], views: int = 1
    ) -> None:
        # MLflow logs files only: a checkpoint is bytes, so it passes through a temp file.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(PATH).name
            torch.save(
                {
                    "arch": spec.model.arch,
                    "config": asdict(spec.model),
                    "state_dict": {k: v.cpu() for k, v in state.items()},
                    "views": views,
                },
                path,
            )
            self.client.log_artifact(run_id, str(path), str(Path(PATH).parent))

    def load(self, run_id: str) -> torch.nn.Module | None:
        """The model saved in ``run_id``, or ``None`` if that run holds no checkpoint."""
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = self.client.download_artifacts(run_id, PATH, tmp)
            except (mlflow.exceptions.MlflowException, OSError):
                return None
            saved = torch.load(path, weights_only=True)
        model = build_model(config_from_dict(saved["arch"], saved["config"]))
        if saved.get("views", 1) > 1:  # absent from checkpoints saved before views existed
            model = ViewAverage(model)
        model.load_state_dict(saved["state_dict"])
        return model
