"""Train one configuration on tensor-resident batches, reporting every step.

    result = train(model, splits.train, TrainConfig(optimizer="adam", lr=1e-3),
                   val=splits.val, probe=splits.probe, on_step=callback)

A trial's budget is ``epochs`` passes over the train split, cut into ``steps`` equal steps
(a step is a fixed number of training images, a fraction of an epoch, so a pruner can stop a
bad trial after seconds; ``steps=None`` means one step per epoch). After every step
``on_step(metrics)`` gets a ``StepMetrics``; returning ``True`` stops training (the study
prunes there). Intermediate steps are validated on ``probe`` (a small stratified subset of the
validation split) when one is given, the last step always on the whole ``val`` split.

The learning rate follows ``schedule`` over the whole budget (per batch), so a trial pruned
early is judged on the same part of its schedule as every other trial at that step. Given
``config.seconds`` (a final fit under ``--budget``), the schedule follows whichever is further
along, the batches or the clock, and training ends when the time is spent: a machine slower
than the fit was priced at still ends its schedule (the rate annealed), with fewer epochs. Loss
and correct counts are accumulated on the device and read once per step. A non-finite loss raises
``Diverged``. Same seed, config and CPU: same numbers, run after run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from data import Batches
from data.augment import crop_flip
from models import ModelConfig, build_model
from search.precision import autocast

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "onecycle", "cosine")
# Measured on 2 CPU cores (benchmarks/step.py): 256-image batches in channels-last order
# evaluate 2-4x faster than 2048 (the activations stay in cache); nothing is gained above.
EVAL_BATCH = 256
WARM_UP = 0.25  # one-cycle: the first quarter of the budget ramps the rate up from lr / 25
Split = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "sgd"
    lr: float = 0.01  # the article's SGD learning rate
    momentum: float = 0.9  # the article's SGD momentum; ignored by the other optimizers
    weight_decay: float = 0.0
    batch_size: int = 64  # the article's batch size
    epochs: float = 5  # the article trains 5; a final fit under --budget may stop mid-epoch
    schedule: str = "constant"  # the article keeps the rate fixed
    augment: bool = False  # random crop (+-2 px) and horizontal flip, on the device
    label_smoothing: float = 0.0  # cross-entropy's target smoothing (0.1 is the usual value)
    shuffle: bool = True
    drop_last: bool = False
    seed: int = 0
    steps: int | None = None  # reports over the whole budget; None: one per epoch
    seconds: float | None = None  # a time limit: the schedule then follows the clock too
    precision: str = "fp32"  # or "bf16": autocast where the CPU has it (search.precision)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {OPTIMIZERS}, got optimizer={self.optimizer!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule must be one of {SCHEDULES}, got schedule={self.schedule!r}"
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
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(
                f"label_smoothing must be in [0, 1), got label_smoothing={self.label_smoothing!r}"
            )
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"seconds must be positive or None, got seconds={self.seconds!r}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1 or None, got steps={self.steps!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got precision={self.precision!r}")


@dataclass(frozen=True)
class StepMetrics:
    step: int  # 1-based, the pruner's resource
    epoch: float  # passes over the train split so far (fractional between epoch ends)
    train_loss: float  # mean over this step's batches
    train_accuracy: float
    val_loss: float  # on the probe at intermediate steps, on the whole split at the last
    val_accuracy: float
    step_seconds: float  # training and validating this step


@dataclass
class TrainResult:
    history: list[StepMetrics] = field(default_factory=list)
    stopped_early: bool = False  # the callback asked to stop
    val_predictions: torch.Tensor | None = None  # on the whole ``val`` split, after the last step

    @property
    def last(self) -> StepMetrics:
        return self.history[-1]


class Diverged(RuntimeError):
    """The training loss became NaN or infinite; ``step`` says when."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"training loss became {loss} in step {step}; lr is probably too high")
        self.step, self.loss = step, loss


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of ``config`` for ``model``'s parameters (already on their device)."""
    params, lr, wd = list(model.parameters()), config.lr, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    # On a CPU, torch's default Adam is a loop over the parameters; its fused kernel took a
    # third to a fifth of the time a step, 1.1-1.2x the whole batch on the space's networks
    # (benchmarks/optimizer.py; docs/measured.md, 2026-12-05 09:30). SGD gained nothing,
    # RMSprop has none; GPUs keep torch's default (not measured there).
    fused = {"fused": True} if params and params[0].device.type == "cpu" else {}
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, **fused)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, **fused)
    return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)


def lr_factor(schedule: str, progress: float) -> float:
    """The multiplier of ``lr`` after ``progress`` (0..1) of the budget."""
    if schedule == "onecycle":
        if progress < WARM_UP:
            return 0.04 + 0.96 * progress / WARM_UP
        progress = (progress - WARM_UP) / (1 - WARM_UP)
    elif schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def evaluate(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, precision: str = "fp32"
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on one split, in eval mode."""
    loss, accuracy, _ = evaluate_and_predict(model, images, labels, precision)
    return loss, accuracy


def evaluate_and_predict(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, precision: str = "fp32"
) -> tuple[float, float, torch.Tensor]:
    """``evaluate`` plus every image's predicted class (for pictures, at no extra pass); under
    bf16 autocast with ``precision`` bf16 (the weights stay as they are)."""
    model.eval()
    loss_sum = torch.zeros((), device=images.device)
    predicted = []
    with torch.inference_mode(), autocast(precision, images.device):
        for x, y in Batches(images, labels, EVAL_BATCH, shuffle=False):
            logits = model(x.contiguous(memory_format=torch.channels_last))
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
            predicted.append(logits.argmax(1))
    predicted = torch.cat(predicted)
    correct = int((predicted == labels).sum())
    return float(loss_sum) / len(labels), correct / len(labels), predicted


def fit(
    model_config: ModelConfig,
    config: TrainConfig,
    data: Split,
    val: Split | None = None,
    on_step: Callable[[StepMetrics], bool | None] | None = None,
) -> tuple[nn.Module, TrainResult]:
    """A configuration trained from its seed (``config.seed`` seeds the initial weights as well
    as the batches): the one way trials' re-runs, the final fit, retraining and the
    benchmarks train."""
    torch.manual_seed(config.seed)
    model = build_model(model_config)
    return model, train(model, data, config, val, on_step=on_step)


def seconds_per_image(
    model_config: ModelConfig,
    config: TrainConfig,
    data: Split,
    batches: int = 20,
    seconds: float = 2.0,
) -> float:
    """What training this configuration costs here per image, timed on random batches of the
    whole of ``data`` (as an epoch reads them) after a few untimed ones, for at least
    ``batches`` batches and ``seconds``; a throwaway model, the caller's random state kept.
    The price of a final fit, measured rather than taken from a trial (whose time includes its
    validation, and for the first trial of a process its warm-up). Measured: 20 batches of
    neighbouring images (in cache) understated a real epoch by a quarter, and 0.6 s of timing
    was a fifth off either way."""
    images, labels = data
    size, warm_up = min(config.batch_size, len(labels)), 5
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(model_config).to(images.device, memory_format=torch.channels_last)
        one_batch = _BatchStep(model.train(), config, total_batches=10**6)  # lr stays near base
        timed, start = 0, 0.0
        while timed < batches or time.perf_counter() - start < seconds:
            index = torch.randint(len(labels), (size,), device=images.device)
            one_batch(images[index], labels[index])
            if warm_up:
                warm_up -= 1
                start = time.perf_counter()
            else:
                timed += 1
        if images.device.type == "cuda":
            torch.cuda.synchronize(images.device)
    return (time.perf_counter() - start) / (timed * size)


def step_ends(config: TrainConfig, batches_per_epoch: int) -> list[int]:
    """The batch counts after which each step ends: equal shares of the whole budget (one a
    started epoch when ``steps`` is None)."""
    total = max(1, round(config.epochs * batches_per_epoch))
    steps = min(config.steps or math.ceil(config.epochs), total)
    return [round(total * (k + 1) / steps) for k in range(steps)]


def train(
    model: nn.Module,
    data: Split,
    config: TrainConfig,
    val: Split | None = None,
    probe: Split | None = None,
    on_step: Callable[[StepMetrics], bool | None] | None = None,
) -> TrainResult:
    """Train ``model`` (moved to the data's device, channels-last) for the whole budget, or
    until ``config.seconds`` of training have passed, the schedule then following the clock."""
    images, labels = data
    model.to(device=images.device, memory_format=torch.channels_last)
    batches = Batches(
        images, labels, config.batch_size, config.shuffle, config.drop_last, config.seed
    )
    if len(batches) == 0:
        raise ValueError(f"batch_size {config.batch_size} exceeds the {len(labels)} train images")
    ends = step_ends(config, len(batches))
    clock = _Clock(config.seconds)
    one_batch = _BatchStep(model, config, ends[-1], clock)
    tally, result = _Tally(images.device), TrainResult()
    model.train()
    for done, (x, y) in enumerate(_passes(batches, ends[-1]), start=1):
        tally.add(*one_batch(x, y), y)
        out_of_time = clock.progress() >= 1.0
        if done != ends[len(result.history)] and not out_of_time:
            continue
        last = out_of_time or len(result.history) + 1 == len(ends)
        _train_loss(tally, len(result.history) + 1)  # diverged: not worth validating
        split = val if last or probe is None else probe
        judged = None if split is None else evaluate_and_predict(model, *split, config.precision)
        metrics = _end_step(tally, result, done / len(batches), judged, last)
        if on_step is not None and on_step(metrics) and not last:
            result.stopped_early = True
            return result
        if last:
            return result
        model.train()
        tally.reset()
    return result


def _passes(batches: Batches, total: int):
    """``total`` batches: as many passes over ``batches`` as that takes (the last one cut)."""
    done = 0
    while done < total:
        for batch in batches:
            yield batch
            done += 1
            if done == total:
                return


class _Clock:
    """The share of a training time limit used so far (always 0 without a limit)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds, self.start = seconds, time.perf_counter()

    def progress(self) -> float:
        if self.seconds is None:
            return 0.0
        return (time.perf_counter() - self.start) / self.seconds


class _BatchStep:
    """One optimizer step on one batch, with the schedule and augmentation of ``config``; the
    schedule's progress is the batches' or ``clock``'s, whichever is further."""

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        total_batches: int,
        clock: _Clock | None = None,
    ) -> None:
        clock = clock or _Clock(None)
        self.model, self.config = model, config
        self.optimizer = make_optimizer(model, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda i: lr_factor(config.schedule, max(i / total_batches, clock.progress())),
        )
        self.generator = torch.Generator().manual_seed(config.seed + 1)  # augmentation's own

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.augment:
            x = crop_flip(x, self.generator)
        with autocast(self.config.precision, x.device):
            logits = self.model(x.contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach(), logits.detach()


class _Tally:
    """A step's loss and correct count, kept on the device and read once, at the step's end."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.reset()

    def reset(self) -> None:
        self.loss.zero_(), self.correct.zero_()
        self.seen, self.start = 0, time.perf_counter()

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.loss += loss * len(y)
        self.correct += (logits.argmax(1) == y).sum()
        self.seen += len(y)


def _train_loss(tally: _Tally, step: int) -> float:
    """The step's mean training loss; a non-finite one raises ``Diverged``."""
    loss = float(tally.loss) / tally.seen
    if not math.isfinite(loss):
        raise Diverged(step, loss)
    return loss


def _end_step(
    tally: _Tally, result: TrainResult, epoch: float, judged: tuple | None, last: bool
) -> StepMetrics:
    """The step's metrics, with ``judged`` (the validation's loss, accuracy and predictions,
    if it was validated), appended to ``result``."""
    step = len(result.history) + 1
    train_loss = _train_loss(tally, step)
    val_loss, val_accuracy = math.nan, math.nan
    if judged is not None:
        val_loss, val_accuracy, predicted = judged
        result.val_predictions = predicted if last else None
    seconds = time.perf_counter() - tally.start
    accuracy = int(tally.correct) / tally.seen
    metrics = StepMetrics(step, epoch, train_loss, accuracy, val_loss, val_accuracy, seconds)
    result.history.append(metrics)
    return metrics
