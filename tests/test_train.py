"""search/train.py: the trainer on a small slice of the real data."""

from __future__ import annotations

import pytest
import torch

from models import CNNConfig, MLPConfig, build_model
from search.device import DeviceError, resolve_device
from search.train import Diverged, TrainConfig, evaluate, train


def fit(splits, model_config, train_config, on_epoch=None, seed=0):
    torch.manual_seed(seed)
    model = build_model(model_config)
    return model, train(model, splits, train_config, on_epoch=on_epoch)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop"])
def test_short_training_lowers_loss(small_splits, optimizer):
    lr = 0.05 if optimizer == "sgd" else 1e-3
    config = TrainConfig(optimizer=optimizer, lr=lr, batch_size=64, epochs=3, weight_decay=1e-4)
    model, result = fit(small_splits, MLPConfig(hidden_dim=64), config)
    losses = [m.train_loss for m in result.history]
    assert losses[-1] < losses[0] * 0.8
    assert result.best.val_accuracy > 0.6  # far above chance (0.1)


def test_callback_sees_every_epoch_and_can_stop(small_splits):
    seen = []

    def on_epoch(metrics):
        seen.append(metrics)
        return metrics.epoch == 2  # stop after the second epoch

    _, result = fit(small_splits, MLPConfig(hidden_dim=32), TrainConfig(epochs=5), on_epoch)
    assert [m.epoch for m in seen] == [1, 2] and result.stopped_early
    first = seen[0]
    assert 0 <= first.train_accuracy <= 1 and 0 <= first.val_accuracy <= 1
    assert first.val_loss > 0 and first.epoch_seconds > 0


def test_non_finite_loss_stops_with_reason(small_splits):
    config = TrainConfig(optimizer="sgd", lr=1e6, momentum=0.9, epochs=3)
    with pytest.raises(Diverged, match="training loss became (nan|inf) in epoch 1"):
        fit(small_splits, MLPConfig(hidden_dim=32), config)


def test_cpu_determinism(small_splits):
    config = TrainConfig(optimizer="adam", lr=1e-3, epochs=2, batch_size=128)
    model_config = CNNConfig(n_layers=1, channels=4, dropout=0.1)
    a = fit(small_splits, model_config, config)[1].history
    b = fit(small_splits, model_config, config)[1].history
    assert [m.val_accuracy for m in a] == [m.val_accuracy for m in b]
    assert [m.train_loss for m in a] == [m.train_loss for m in b]


def test_best_state_is_the_best_epoch(small_splits):
    model, result = fit(small_splits, MLPConfig(hidden_dim=32), TrainConfig(epochs=3))
    model.load_state_dict(result.best_state)
    _, accuracy = evaluate(model, *small_splits.val)
    assert accuracy == pytest.approx(result.best.val_accuracy)


def test_evaluate_restores_nothing_and_uses_eval_mode(small_splits):
    model = build_model(MLPConfig(hidden_dim=16, dropout=0.5))
    a = evaluate(model, *small_splits.val)
    b = evaluate(model, *small_splits.val)
    assert a == b and not model.training  # dropout off: two evaluations agree


def test_train_config_validates():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="lr must be a positive number"):
        TrainConfig(lr=float("nan"))


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(DeviceError, match="--device must be one of"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CI has none)")
def test_cuda_training_runs(raw):
    from data import make_splits

    splits = make_splits(raw, device="cuda", val_size=1000, train_size=2000)
    _, result = fit(splits, CNNConfig(n_layers=2, channels=8), TrainConfig(epochs=1))
    assert result.history[0].val_accuracy > 0.3
