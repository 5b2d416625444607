"""The training loop: one epoch, evaluation, and ``fit`` over epochs. No database, no HTTP."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from models.options import TrainOptions, build_loss, build_optimizer
from models.registry import BatchAugment, ModelSpec, Split, TrainingData

EVAL_BATCH = 4096


@dataclass
class TrainState:
    """What a checkpoint holds: the network, its optimizer, the epochs done and the RNGs."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    epoch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def new_state(spec: ModelSpec, options: TrainOptions, device: torch.device) -> TrainState:
    """A freshly initialised network: seeded, so the same spec gives the same weights."""
    torch.manual_seed(options.seed)
    module = spec.build(options).to(device)
    optimizer = build_optimizer(options, module.parameters())
    generator = torch.Generator().manual_seed(options.seed)
    return TrainState(module=module, optimizer=optimizer, generator=generator)


def to_device(data: TrainingData, device: torch.device) -> TrainingData:
    """Move every split to the training device once, so batches are plain index selects."""

    def move(split: Split | None) -> Split | None:
        return None if split is None else Split(split.x.to(device), split.y.to(device))

    return TrainingData(train=move(data.train), val=move(data.val), test=move(data.test))


def train_epoch(
    state: TrainState,
    split: Split,
    loss_fn: nn.Module,
    options: TrainOptions,
    augment: BatchAugment | None,
    should_stop: Callable[[], bool],
) -> float | None:
    """One pass over ``split``; the mean training loss, or None if stopped between batches."""
    module, optimizer = state.module, state.optimizer
    module.train()
    n = len(split)
    batch_size = options.batch_size or n
    order = torch.randperm(n, generator=state.generator) if batch_size < n else None
    # Accumulate on the device: a .item() per batch would sync the GPU every step.
    total = torch.zeros((), device=split.x.device)
    for start in range(0, n, batch_size):
        if should_stop():
            return None
        if order is None:
            xb, yb = split.x, split.y
        else:
            index = order[start : start + batch_size].to(split.x.device)
            xb, yb = split.x.index_select(0, index), split.y.index_select(0, index)
        if augment is not None:
            xb = augment(xb, state.generator)

        def closure(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(module(xb), yb)
            loss.backward()
            if options.grad_clip_norm is not None:
                nn.utils.clip_grad_norm_(module.parameters(), options.grad_clip_norm)
            return loss

        # step(closure) suits every optimizer; LBFGS needs it, the rest call it once.
        loss = optimizer.step(closure)
        total += loss.detach() * xb.shape[0]
    return (total / n).item()


@torch.no_grad()
def evaluate(
    module: nn.Module, split: Split, loss_fn: nn.Module, task: str
) -> tuple[float, float | None]:
    """Mean loss and, for classifiers, accuracy over ``split``."""
    module.eval()
    total_loss, correct, n = 0.0, 0, len(split)
    for start in range(0, n, EVAL_BATCH):
        xb, yb = split.x[start : start + EVAL_BATCH], split.y[start : start + EVAL_BATCH]
        outputs = module(xb)
        total_loss += loss_fn(outputs, yb).item() * xb.shape[0]
        if task == "binary":
            correct += ((outputs > 0).to(yb.dtype) == yb).sum().item()
        elif task == "multiclass":
            correct += (outputs.argmax(dim=1) == yb).sum().item()
    accuracy = None if task == "regression" else correct / n
    return total_loss / n, accuracy


def epoch_metrics(
    spec: ModelSpec, state: TrainState, data: TrainingData, loss_fn: nn.Module, train_loss: float
) -> dict[str, float]:
    """The per-epoch record: train loss, then validation/test figures and the model's own."""
    metrics = {"train_loss": train_loss}
    if data.val is not None:
        metrics["val_loss"], val_accuracy = evaluate(state.module, data.val, loss_fn, spec.task)
        if val_accuracy is not None:
            metrics["val_accuracy"] = val_accuracy
    elif spec.task != "regression":
        metrics["train_accuracy"] = evaluate(state.module, data.train, loss_fn, spec.task)[1]
    if data.test is not None:
        metrics["test_loss"], test_accuracy = evaluate(state.module, data.test, loss_fn, spec.task)
        if test_accuracy is not None:
            metrics["test_accuracy"] = test_accuracy
    if spec.report is not None:
        metrics.update(spec.report(state.module))
    return metrics


class Diverged(Exception):
    """A loss became NaN or infinite."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"loss diverged at epoch {epoch}")
        self.epoch = epoch


def fit(
    spec: ModelSpec,
    options: TrainOptions,
    data: TrainingData,
    state: TrainState,
    *,
    on_epoch: Callable[[TrainState, dict[str, float]], None],
    should_stop: Callable[[], bool],
    should_pause: Callable[[], bool] = lambda: False,
) -> bool:
    """Train from ``state.epoch`` to ``options.epochs``; True when every epoch ran.

    ``should_stop`` is read between batches (cancel: the partial epoch is dropped);
    ``should_pause`` between epochs (shutdown: the epoch finishes, so a checkpoint is exact).
    ``on_epoch`` sees each finished epoch's metrics; it raises ``Diverged`` on NaN/inf losses
    only after the metrics were handed over, so the history shows the ``null``.
    """
    loss_fn = build_loss(options.loss)
    augment = spec.augment(options) if spec.augment is not None else None
    while state.epoch < options.epochs:
        if should_pause():
            return False
        started = time.perf_counter()
        train_loss = train_epoch(state, data.train, loss_fn, options, augment, should_stop)
        if train_loss is None:
            return False
        seconds = time.perf_counter() - started
        state.epoch += 1
        metrics = epoch_metrics(spec, state, data, loss_fn, train_loss)
        metrics["epoch_seconds"] = seconds
        on_epoch(state, metrics)
        if any(not math.isfinite(metrics[k]) for k in ("train_loss", "val_loss") if k in metrics):
            raise Diverged(state.epoch)
    return True
