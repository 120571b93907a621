"""Train one configuration for a few epochs on tensor-resident batches.

    result = train(model, splits, TrainConfig(optimizer="adam", lr=1e-3), on_epoch=callback)

``on_epoch(metrics)`` runs after every epoch with an ``EpochMetrics``; returning ``True`` stops
training (the study prunes there). Loss and correct counts are accumulated on the device and
read once per epoch, so a GPU is not synchronised every batch. A non-finite epoch loss raises
``Diverged`` (with the epoch) instead of reporting NaN metrics. ``evaluate`` runs in eval mode
under ``torch.inference_mode()``. Same seed, config and CPU: same numbers, run after run.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from data import Batches, Splits

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
EVAL_BATCH = 2048  # evaluation needs no gradients: big batches are faster and fit everywhere


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "sgd"
    lr: float = 0.01  # the article's SGD learning rate
    momentum: float = 0.9  # the article's SGD momentum; ignored by the other optimizers
    weight_decay: float = 0.0
    batch_size: int = 64  # the article's batch size
    epochs: int = 5  # the article trains 5 epochs
    shuffle: bool = True
    drop_last: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {OPTIMIZERS}, got optimizer={self.optimizer!r}"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got lr={self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got momentum={self.momentum!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got weight_decay={self.weight_decay!r}")
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError(
                f"batch_size and epochs must be >= 1, got {self.batch_size=} {self.epochs=}"
            )


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based, as people count epochs
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    epoch_seconds: float


@dataclass
class TrainResult:
    history: list[EpochMetrics] = field(default_factory=list)
    stopped_early: bool = False  # the callback asked to stop
    best_state: dict[str, torch.Tensor] | None = None  # weights of the best validation epoch

    @property
    def best(self) -> EpochMetrics:
        return max(self.history, key=lambda m: m.val_accuracy)


class Diverged(RuntimeError):
    """The training loss became NaN or infinite; ``epoch`` says when."""

    def __init__(self, epoch: int, loss: float, history: list[EpochMetrics]) -> None:
        super().__init__(f"training loss became {loss} in epoch {epoch}; lr is probably too high")
        self.epoch, self.loss, self.history = epoch, loss, history


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params, lr, wd = model.parameters(), config.lr, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)


def train_epoch(model: nn.Module, batches: Batches, optimizer: torch.optim.Optimizer):
    """One pass over ``batches``; returns (mean loss, accuracy) as floats (one device sync)."""
    model.train()
    device = batches.images.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for images, labels in batches:
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(labels)
        correct += (logits.detach().argmax(1) == labels).sum()
        seen += len(labels)
    return float(loss_sum) / seen, int(correct) / seen


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on one split, in eval mode."""
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.inference_mode():
        for x, y in Batches(images, labels, EVAL_BATCH, shuffle=False):
            logits = model(x)
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
    return loss_sum / len(labels), correct / len(labels)


def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Predicted class of every image (eval mode, no gradients)."""
    model.eval()
    with torch.inference_mode():
        return torch.cat(
            [model(x).argmax(1) for x, _ in Batches(images, images, EVAL_BATCH, shuffle=False)]
        )


def train(
    model: nn.Module,
    splits: Splits,
    config: TrainConfig,
    on_epoch: Callable[[EpochMetrics], bool | None] | None = None,
) -> TrainResult:
    """Train ``model`` (moved to the splits' device) and keep the best epoch's weights."""
    model.to(splits.device)
    optimizer = make_optimizer(model, config)
    batches = Batches(
        *splits.train, config.batch_size, config.shuffle, config.drop_last, config.seed
    )
    if len(batches) == 0:
        raise ValueError(
            f"batch_size {config.batch_size} exceeds the {len(splits.train[1])} train images"
        )
    result = TrainResult()
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        train_loss, train_acc = train_epoch(model, batches, optimizer)
        if not math.isfinite(train_loss):
            raise Diverged(epoch, train_loss, result.history)
        val_loss, val_acc = evaluate(model, *splits.val)
        metrics = EpochMetrics(epoch, train_loss, train_acc, val_loss, val_acc,
                               time.perf_counter() - start)  # fmt: skip
        if not result.history or val_acc > result.best.val_accuracy:
            result.best_state = copy.deepcopy(model.state_dict())
        result.history.append(metrics)
        if on_epoch is not None and on_epoch(metrics):
            result.stopped_early = True
            break
    return result
