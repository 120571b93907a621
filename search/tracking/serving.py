"""What ``mlflow models serve`` and ``mlflow.pyfunc.load_model`` answer for the champion: one
readable row per image, ``class_index``, ``class_name`` and ``probabilities``.

This file travels inside the logged model as ``fashion_search_serving.py`` (a module name no
user project has) and is MLflow's ``loader_module`` for the model's pyfunc flavor. It imports
only torch, numpy and pandas: the model is a pickled ``nn.Sequential`` of ``torch.nn`` layers
and the class names are a JSON file beside it, so serving needs nothing from this project.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import torch

MODEL_FILE = "model.pth"  # where mlflow.pytorch.save_model puts a pickled module
CLASSES_FILE = "classes.json"


class Classifier:
    """MLflow's pyfunc interface over the network: images in, a table of predictions out."""

    def __init__(self, model: torch.nn.Module, classes: list[str]) -> None:
        self.model, self.classes = model.eval(), classes

    def predict(self, model_input, params=None) -> pd.DataFrame:
        if isinstance(model_input, dict):  # a named input: {"images": array}
            (model_input,) = model_input.values()
        images = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        if images.ndim == 3:  # (N, 28, 28): the channel is implied
            images = images.unsqueeze(1)
        with torch.inference_mode():
            probabilities = self.model(images).softmax(dim=1)
        indices = probabilities.argmax(dim=1).tolist()
        return pd.DataFrame(
            {
                "class_index": indices,
                "class_name": [self.classes[i] for i in indices],
                "probabilities": probabilities.tolist(),
            }
        )


def _load_pyfunc(data_path: str, model_config: dict | None = None) -> Classifier:
    """MLflow's entry point: ``data_path`` is the model's ``data`` directory (MLflow 3 also
    passes the flavor's ``model_config``, which this model does not use)."""
    model = torch.load(os.path.join(data_path, MODEL_FILE), map_location="cpu", weights_only=False)
    with open(os.path.join(data_path, CLASSES_FILE)) as f:
        classes = json.load(f)
    return Classifier(model, classes)
