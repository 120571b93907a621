"""search/tracking/packaging.py: every family logged as the champion is an ordinary module for
``mlflow.pytorch`` and a readable classifier for ``mlflow.pyfunc`` (a local MLflow store)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import pytest
import torch
from mlflow import MlflowClient

from data import CLASSES
from models import CNNConfig, MLPConfig, ResNetConfig, SeedNetConfig, build_model, standalone
from search.tracking.packaging import LOADER_MODULE, log_champion


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("packaging")
    yield client, experiment
    mlflow.set_tracking_uri(previous)


@pytest.mark.parametrize(
    "config",
    [
        MLPConfig(n_layers=1, hidden_dim=16, batch_norm=True, dropout=0.1),
        CNNConfig(n_layers=2, channels=4, head_dim=16, head_layers=2, dropout=0.2),
        SeedNetConfig("batch_norm"),
        ResNetConfig(n_layers=2, channels=4, dropout=0.1),
    ],
    ids=["mlp", "cnn", "seed", "resnet"],
)
def test_logged_champion_loads_as_a_module_and_serves_readable_rows(store, config, small_splits):
    client, experiment = store
    torch.manual_seed(0)
    shipped = standalone(build_model(config).eval(), small_splits.mean, small_splits.std)
    raw = small_splits.test[0][:6] * small_splits.std + small_splits.mean  # pixels in [0, 1]
    run = client.create_run(experiment)
    info = log_champion(shipped, raw[:4].numpy(), run.info.run_id, f"packaged-{config.arch}")

    model = mlflow.pytorch.load_model(info.model_uri)
    assert type(model) is torch.nn.Sequential
    model.eval()
    assert torch.allclose(model(raw), shipped(raw), atol=1e-6)
    model.train()
    model.to("cpu")
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(raw), small_splits.test[1][:6])
    loss.backward()
    optimizer.step()
    assert not torch.allclose(model.eval()(raw), shipped(raw))  # it learned something

    served = mlflow.pyfunc.load_model(info.model_uri)
    assert served.metadata.flavors["python_function"]["loader_module"] == LOADER_MODULE
    rows = served.predict(raw.numpy())
    expected = shipped(raw).argmax(1).tolist()
    assert rows["class_index"].tolist() == expected
    assert rows["class_name"].tolist() == [CLASSES[i] for i in expected]
    assert all(abs(sum(p) - 1) < 1e-5 and len(p) == 10 for p in rows["probabilities"])
    inputs = served.metadata.get_input_schema().inputs[0]
    assert inputs.shape == (-1, 1, 28, 28)
    outputs = served.metadata.get_output_schema().input_names()
    assert outputs == ["class_index", "class_name", "probabilities"]


USER_SCRIPT = """
import json, sys
import mlflow, torch
model = mlflow.pytorch.load_model(sys.argv[1])
images = torch.load("images.pt")
model.eval()
with torch.no_grad():
    logits = model(images)
print(json.dumps({"logits": logits.tolist(),
                  "classes": sorted({type(m).__module__ for m in model.modules()}),
                  "user_packages": sorted(n for n in ("models", "data", "search")
                                          if n in sys.modules)}))
"""


def test_a_residual_champion_loads_beside_a_users_own_models_package(store, tmp_path):
    """The shipped ``Residual`` travels in the model: a project whose ``models``, ``data`` and
    ``search`` refuse to be imported loads it with torch and mlflow alone."""
    client, experiment = store
    torch.manual_seed(0)
    shipped = standalone(build_model(ResNetConfig(n_layers=2, channels=4)).eval(), 0.3, 0.4)
    images = torch.rand(3, 1, 28, 28)
    run = client.create_run(experiment)
    info = log_champion(shipped, images.numpy(), run.info.run_id, "packaged-resnet-abroad")
    project = tmp_path / "project"
    for name in ("models", "data", "search"):
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text(f"raise ImportError('the user\\'s {name}')")
    (project / "use.py").write_text(USER_SCRIPT)
    torch.save(images, project / "images.pt")
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()}
    env.update(PYTHONPATH=str(project), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "use.py", info.model_uri],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["user_packages"] == []
    assert "fashion_search_blocks" in result["classes"]
    assert torch.allclose(torch.tensor(result["logits"]), shipped(images), atol=1e-5)
