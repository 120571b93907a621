"""The model registry: which model is the champion, and registering a new one.

The champion is the end of a study's work: the final fit's model (or, with ``--final-epochs
0``, the best trial's own), as a standalone module (``models.export``) in the format of
``packaging``. A new version gets the alias ``champion`` unless the current champion is at
least as good (compared by the validation accuracy of the trial each came from). Several
workers may end a study at once: ``register`` is called under the study's claim lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import optuna
import torch
from mlflow import MlflowClient

from data import CLASSES
from models.user import keywords, source_hash
from search.process import me
from search.space import full_params
from search.tracking.packaging import log_champion

ALIAS = "champion"


class Registry:
    def __init__(self, client: MlflowClient, name: str) -> None:
        self.client, self.name = client, name

    def champion(self):
        try:
            return self.client.get_model_version_by_alias(self.name, ALIAS)
        except mlflow.exceptions.MlflowException:
            return None

    def is_champion(self, study_name: str, trial_number: int):
        """The registered champion if it already is this study's trial, else ``None``."""
        current = self.champion()
        if current is None:
            return None
        key = (current.tags.get("study"), current.tags.get("trial_number"))
        return current if key == (study_name, str(trial_number)) else None

    def load(self, version) -> torch.nn.Module:
        """A registered version's model (a standalone ``nn.Sequential``)."""
        return mlflow.pytorch.load_model(
            f"models:/{self.name}/{version.version}", map_location="cpu"
        )

    def register(self, entry: Entry, forced: bool = False) -> str:
        """Log ``entry.model`` (the final fit, or the own weights, of the study's winner) under
        the parent run of ``entry.runs`` (parent, final fit) and register it unless the current
        champion is as good (``forced``: whatever it is); returns a line for the summary."""
        study, best = entry.study, entry.best
        current = self.champion()
        if current is not None and not forced:
            same = self.is_champion(study.study_name, best.number) is not None
            if same or float(current.tags.get("val_accuracy", "-1")) >= best.values[0]:
                return f"champion unchanged: {self.name} version {current.version}"
        info = log_champion(entry.model, entry.example, entry.runs[0], self.name)
        version = str(info.registered_model_version)
        for key, value in tags(entry).items():
            self.client.set_model_version_tag(self.name, version, key, str(value))
        views = getattr(entry.model, "views", 1)  # a shipped ViewAverage says how many
        description = describe(
            self.name, study.study_name, best.number, entry.test_accuracy, views
        )
        self.client.update_model_version(self.name, version, description=description)
        self.client.set_registered_model_alias(self.name, ALIAS, version)
        return f"champion: {self.name} version {version} (alias @{ALIAS})"


@dataclass(frozen=True)
class Entry:
    """A champion to register: the study and trial it comes from, the standalone model, its
    test accuracy, a few test images as the input example, (parent run, final-fit run)."""

    study: optuna.Study
    best: optuna.trial.FrozenTrial
    model: torch.nn.Module
    test_accuracy: float
    example: np.ndarray
    runs: tuple[str, str | None]


def tags(entry: Entry) -> dict[str, Any]:
    best = entry.best
    return {
        "study": entry.study.study_name,
        "trial_number": best.number,
        "val_accuracy": best.values[0],
        "test_accuracy": entry.test_accuracy,
        "params": json.dumps(best.params),
        "final_fit_run_id": entry.runs[1] or "none (the trial's own weights)",
        "fitted_by": me(),  # host:pid of the process that ended the study
        **network_tags(full_params(best)),
        **cost_tags(entry.study, best),
    }


def network_tags(params: dict) -> dict[str, str]:
    """A user's network (``--model``): its reference, its keyword values, its source's hash."""
    ref = params.get("model")
    if ref is None:
        return {}
    taken = keywords(ref)
    values = {k: v for k, v in params.items() if k in taken}
    return {"model": ref, "model_params": json.dumps(values), "model_sha256": source_hash(ref)}


def cost_tags(study: optuna.Study, best: optuna.trial.FrozenTrial) -> dict[str, str]:
    """Its latency and size (measured under a limit, ``search.limits``) beside the limits."""
    limits = study.user_attrs.get("search_space", {})
    tags = {k: best.user_attrs[k] for k in ("latency_ms", "n_parameters") if k in best.user_attrs}
    for key in ("max_latency_ms", "max_params"):
        if limits.get(key) is not None:
            tags[key] = limits[key]
    return {k: str(v) for k, v in tags.items()} if "latency_ms" in tags else {}


def describe(
    model: str, study_name: str, trial_number: int, test_accuracy: float, views: int = 1
) -> str:
    """The version's description (Markdown in the MLflow UI: code in backticks, so nothing in
    it reads as an HTML tag); ``views``: how many views of an image the model averages."""
    averaged = (
        f"It averages {views} views of each image (itself and its mirror, each also shifted "
        "one pixel each way diagonally): fashion_search_blocks.ViewAverage, shipped beside "
        "the model, holds the Sequential as .net, which in train() mode it calls alone; its "
        "output is then (N, 10) log-probabilities.\n\n"
        if views > 1
        else ""
    )
    return (
        f"Fashion-MNIST classifier from Optuna study '{study_name}', trial {trial_number}; "
        f"held-out test accuracy {test_accuracy:.4f}.\n\n"
        f"`mlflow.pytorch.load_model('models:/{model}@champion')` gives an ordinary "
        "torch.nn.Sequential (eval(), train(), to(device), fine-tuning), built from torch.nn "
        "layers only. Input: float32 tensor (N, 1, 28, 28) with pixels in [0, 1] (what "
        "torchvision's ToTensor gives); its first layer, normalize, applies the training "
        "normalization. Output: (N, 10) logits; argmax gives the class index.\n\n"
        + averaged
        + "`mlflow models serve` and `mlflow.pyfunc.load_model` answer one row per image: "
        "class_index, class_name, probabilities.\n\n"
        "Classes: " + ", ".join(f"{i} {name}" for i, name in enumerate(CLASSES))
    )
