"""The champion's MLflow model format: an ordinary PyTorch module that also serves readably.

One logged model, two flavors:

- ``pytorch``: a pickle of ``models.export.standalone(...)``, an ``nn.Sequential`` of
  ``torch.nn`` layers, so ``mlflow.pytorch.load_model`` returns a module that ``eval()``,
  ``train()``, ``to(device)`` and fine-tuning work on, loading only torch classes: nothing
  of ours is imported, whatever ``models``/``data``/``search`` packages the user has.
- the one layer of ours a network may hold, ``Residual``, travels beside it as
  ``fashion_search_blocks`` (``models/blocks.py`` under a name no project has; see
  ``models.export``), so a residual champion loads the same way.
- a user's own network (``--model``) travels the same way, its source file under the module
  name it was loaded under (``fashion_search_user_<hash>``, ``models.user``).
- ``python_function``: ``fashion_search_serving`` (``search/tracking/serving.py`` under a name no
  project has) answers ``mlflow models serve`` and ``mlflow.pyfunc.load_model`` with
  ``class_index``, ``class_name`` and ``probabilities`` per image.

Measured alternatives (README, "Use the champion"): MLflow's default ``pt2`` format loads as a
GraphModule that refuses ``eval()`` and cannot move devices; a TorchScript module works but
TorchScript is deprecated in torch 2.x; a pickle of our own classes would import ``models``
at load time.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.models import Model, ModelSignature
from mlflow.types.schema import Array, ColSpec, Schema, TensorSpec

from data import CLASSES
from models.export import BLOCKS_FILE, BLOCKS_MODULE
from models.user import PREFIX as USER_PREFIX
from search.tracking import serving

LOADER_MODULE = "fashion_search_serving"


def signature() -> ModelSignature:
    """Images (N, 1, 28, 28) float32 in [0, 1] in; one row per image out."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 1, 28, 28))]),
        outputs=Schema(
            [
                ColSpec("long", "class_index"),
                ColSpec("string", "class_name"),
                ColSpec(Array("double"), "probabilities"),
            ]
        ),
    )


class _ChampionFlavor:
    """``Model.log`` calls ``save_model`` of the flavor it is given: ours writes MLflow's
    pytorch flavor, then points the pyfunc flavor at the serving module."""

    @staticmethod
    def save_model(path: str, mlflow_model: Model, pytorch_model: torch.nn.Module, **kwargs):
        with tempfile.TemporaryDirectory() as tmp:
            loader = Path(tmp) / f"{LOADER_MODULE}.py"
            shutil.copy(serving.__file__, loader)
            shipped_blocks = Path(tmp) / f"{BLOCKS_MODULE}.py"
            shutil.copy(BLOCKS_FILE, shipped_blocks)
            shipped = [str(loader), str(shipped_blocks), *user_code(pytorch_model, Path(tmp))]
            mlflow.pytorch.save_model(
                pytorch_model,
                path,
                mlflow_model=mlflow_model,
                code_paths=shipped,
                serialization_format="pickle",
                **kwargs,
            )
        data = Path(path) / mlflow_model.flavors["python_function"]["data"]
        (data / serving.CLASSES_FILE).write_text(json.dumps(list(CLASSES)))
        mlflow_model.flavors["python_function"]["loader_module"] = LOADER_MODULE
        mlflow_model.save(str(Path(path) / "MLmodel"))


def user_code(model: torch.nn.Module, into: Path) -> list[str]:
    """A user's network's source file (``models.user``), copied into ``into`` under the module
    name its classes were loaded and pickled under: it travels inside the logged model, so the
    champion loads where the user's file is absent, and no package of the loader shadows it."""
    names = {type(m).__module__ for m in model.modules()}
    files = []
    for name in sorted(n for n in names if n.startswith(USER_PREFIX)):
        copy = into / f"{name}.py"
        shutil.copy(sys.modules[name].__file__, copy)
        files.append(str(copy))
    return files


def log_champion(
    model: torch.nn.Module, example: np.ndarray, run_id: str, registered_model: str
) -> mlflow.models.model.ModelInfo:
    """Log ``model`` (a standalone module) under ``run_id`` and register a new version.
    ``example`` holds a few test images in [0, 1], as a user would send them."""
    return Model.log(
        artifact_path=None,
        name="model",
        flavor=_ChampionFlavor,
        run_id=run_id,
        registered_model_name=registered_model,
        pytorch_model=model,
        signature=signature(),
        input_example=example,
        # Naming the requirements skips MLflow's slow inference of the environment.
        pip_requirements=[
            f"torch=={torch.__version__.split('+')[0]}",
            f"mlflow=={mlflow.__version__}",
            "pandas",
        ],
    )
