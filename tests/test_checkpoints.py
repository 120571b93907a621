"""search/checkpoints.py: a trial's weights saved in its MLflow run and loaded back, whichever
process asks. A real local MLflow store (SQLite)."""

from __future__ import annotations

import torch

from models import ViewAverage, build_model
from models.blocks import VIEWS
from search.space import spec_from_params
from search.tracking.checkpoints import PATH, CheckpointStore

TINY = {"arch": "cnn", "n_layers": 1, "channels": 4, "head_dim": 8, "batch_norm": True}


def test_a_saved_checkpoint_loads_as_the_same_network(local_mlflow):
    client, experiment = local_mlflow
    run_id = client.create_run(experiment).info.run_id
    spec = spec_from_params(TINY, 1, 0)
    torch.manual_seed(3)
    model = build_model(spec.model).eval()
    CheckpointStore(client).save(run_id, spec, model.state_dict())

    assert [a.path for a in client.list_artifacts(run_id, "checkpoint")] == [PATH]
    loaded = CheckpointStore(client).load(run_id).eval()
    images = torch.rand(3, 1, 28, 28)
    assert torch.equal(loaded(images), model(images))  # BatchNorm's running stats too


def test_a_final_fit_that_averages_views_loads_back_averaging_them(local_mlflow):
    client, experiment = local_mlflow
    run_id = client.create_run(experiment).info.run_id
    spec = spec_from_params(TINY, 1, 0)
    torch.manual_seed(3)
    model = ViewAverage(build_model(spec.model)).eval()
    CheckpointStore(client).save(run_id, spec, model.state_dict(), VIEWS)
    loaded = CheckpointStore(client).load(run_id).eval()
    assert isinstance(loaded, ViewAverage)
    images = torch.rand(3, 1, 28, 28)
    assert torch.equal(loaded(images), model(images))


def test_a_run_without_a_checkpoint_gives_none(local_mlflow):
    client, experiment = local_mlflow
    run_id = client.create_run(experiment).info.run_id
    assert CheckpointStore(client).load(run_id) is None
    assert CheckpointStore(client).load("no-such-run") is None
