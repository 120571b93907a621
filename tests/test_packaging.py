"""search/packaging.py: every family logged as the champion is an ordinary module for
``mlflow.pytorch`` and a readable classifier for ``mlflow.pyfunc`` (a local MLflow store)."""

from __future__ import annotations

import mlflow
import pytest
import torch
from mlflow import MlflowClient

from data import CLASSES
from models import CNNConfig, MLPConfig, SeedNetConfig, build_model, standalone
from search.packaging import LOADER_MODULE, log_champion


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
    ],
    ids=["mlp", "cnn", "seed"],
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
