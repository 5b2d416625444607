"""The training loop: one epoch, evaluation, and ``fit`` over epochs. No database, no HTTP."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import torch
from torch import nn

from torchkiln.models.common.options import (
    LRSchedule,
    TrainOptions,
    build_loss,
    build_optimizer,
    build_scheduler,
)
from torchkiln.models.common.registry import BatchAugment, ModelSpec, Split, TrainingData
from torchkiln.workers.early_stopping import EarlyStopper, metric_value
from torchkiln.workers.mlp_step import mlp_sgd_step
from torchkiln.workers.ranks import SOLO, Ranks

EVAL_BATCH = 4096


@dataclass
class TrainState:
    """What a checkpoint holds: the network, its optimizer (and lr schedule), the epochs
    done, the early stopper's count and the RNGs."""

    module: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    epoch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    scheduler: LRSchedule | None = None
    stopper: EarlyStopper | None = None
    # Where each epoch's shuffled copy of the training split goes (not checkpointed).
    shuffled: Split | None = None
    # A distributed job's DistributedDataParallel around ``module``: training steps go
    # through it, everything else (evaluation, checkpoints) uses ``module`` itself.
    wrapped: nn.Module | None = None


def new_state(spec: ModelSpec, options: TrainOptions, device: torch.device) -> TrainState:
    """A freshly initialised network: seeded, so the same spec gives the same weights."""
    torch.manual_seed(options.seed)
    module = spec.build(options).to(device)
    optimizer = build_optimizer(options, module.parameters())
    generator = torch.Generator().manual_seed(options.seed)
    rule = options.early_stopping
    return TrainState(
        module=module,
        optimizer=optimizer,
        generator=generator,
        scheduler=build_scheduler(options, optimizer),
        stopper=EarlyStopper(rule) if rule is not None else None,
    )


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
    fused_steps: bool = True,
    ranks: Ranks = SOLO,
) -> float | None:
    """One pass over ``split``; the mean training loss, or None if stopped between batches.

    With ``fused_steps``, networks that ``mlp_sgd_step`` covers skip autograd (same update).
    Distributed, every rank draws the same order and trains on its shard of each batch
    (``ranks.shard``: DistributedSampler's), so the global batch is ``batch_size``.
    """
    module, optimizer = state.module, state.optimizer
    (state.wrapped or module).train()
    n = len(split)
    batch_size = options.batch_size or n
    x, y = split.x, split.y
    if batch_size < n:
        # One gather per epoch, then batches are contiguous views: a gather per batch
        # cost a seventh of an mnist_mlp epoch on the CPU. The gather writes into the same
        # buffer every epoch: fresh 25 MB each time cost page faults (35,000/s in a VM).
        order = ranks.shard(torch.randperm(n, generator=state.generator).to(x.device))
        buffer = shuffle_buffer(state, split, len(order))
        x = torch.index_select(x, 0, order, out=buffer.x)
        y = torch.index_select(y, 0, order, out=buffer.y)
    elif ranks.world > 1:
        order = ranks.shard(torch.arange(n, device=x.device))
        x, y = x[order], y[order]
    rows = len(x)
    # Each rank's share of the global batch (the options refuse a batch that does not split).
    batch_size = batch_size // ranks.world if options.batch_size else rows
    step = (
        mlp_sgd_step(module, optimizer, loss_fn, options.grad_clip_norm, x, batch_size)
        if fused_steps and state.wrapped is None
        else None
    )
    # Accumulate on the device: a .item() per batch would sync the GPU every step.
    total = torch.zeros((), device=x.device)
    for i, start in enumerate(range(0, rows, batch_size)):
        if i % ranks.stop_check_every == 0 and ranks.decide(should_stop()):
            return None
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        if augment is not None:
            xb = augment(xb, ranks.augment_generator(state))
        if step is not None:
            loss = step(xb, yb)
        else:
            loss = autograd_step(state, loss_fn, options, xb, yb)
        total += loss.detach() * xb.shape[0]
    return ranks.mean(total, rows)


def autograd_step(
    state: TrainState, loss_fn: nn.Module, options: TrainOptions, xb: torch.Tensor, yb: torch.Tensor
) -> torch.Tensor:
    """One batch the general way: autograd's backward, then the optimizer; the loss."""
    module, optimizer = state.module, state.optimizer
    forward = state.wrapped or module  # DDP all-reduces the gradients during backward

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(forward(xb), yb)
        loss.backward()
        if options.grad_clip_norm is not None:
            nn.utils.clip_grad_norm_(module.parameters(), options.grad_clip_norm)
        return loss

    # step(closure) suits every optimizer; LBFGS needs it, the rest call it once.
    return optimizer.step(closure)


def shuffle_buffer(state: TrainState, split: Split, rows: int | None = None) -> Split:
    """The job's room for a shuffled copy of ``rows`` rows of ``split`` (all by default; a
    distributed rank's shard), made on first use.

    Zero-filled, so its pages are touched when it is made: ``fit`` makes it before the
    first epoch's clock starts.
    """
    shape = (len(split) if rows is None else rows, *split.x.shape[1:])
    if state.shuffled is None or state.shuffled.x.shape != shape:
        state.shuffled = Split(
            torch.zeros(shape, dtype=split.x.dtype, device=split.x.device),
            torch.zeros((shape[0], *split.y.shape[1:]), dtype=split.y.dtype, device=split.y.device),
        )
    return state.shuffled


@torch.no_grad()
def evaluate(
    module: nn.Module, split: Split, loss_fn: nn.Module, task: str, ranks: Ranks = SOLO
) -> tuple[float, float | None]:
    """Mean loss and, for classifiers, accuracy over ``split`` (distributed: each rank
    evaluates every ``world``-th row, and the sums are reduced)."""
    module.eval()
    x, y = split.x, split.y
    if ranks.world > 1:
        x, y = x[ranks.rank :: ranks.world], y[ranks.rank :: ranks.world]
    total_loss, correct, n = 0.0, 0, len(x)
    for start in range(0, n, EVAL_BATCH):
        xb, yb = x[start : start + EVAL_BATCH], y[start : start + EVAL_BATCH]
        outputs = module(xb)
        total_loss += loss_fn(outputs, yb).item() * xb.shape[0]
        if task == "binary":
            correct += ((outputs > 0).to(yb.dtype) == yb).sum().item()
        elif task == "multiclass":
            correct += (outputs.argmax(dim=1) == yb).sum().item()
    total_loss, correct, n = ranks.sums(total_loss, correct, n)
    accuracy = None if task == "regression" else correct / n
    return total_loss / n, accuracy


def epoch_metrics(
    spec: ModelSpec,
    state: TrainState,
    data: TrainingData,
    loss_fn: nn.Module,
    train_loss: float,
    ranks: Ranks = SOLO,
) -> dict[str, float]:
    """The per-epoch record: train loss, then validation/test figures and the model's own."""
    metrics = {"train_loss": train_loss}
    module, task = state.module, spec.task
    ranks.before_eval(module)
    if data.val is not None:
        metrics["val_loss"], val_accuracy = evaluate(module, data.val, loss_fn, task, ranks)
        if val_accuracy is not None:
            metrics["val_accuracy"] = val_accuracy
    elif spec.task != "regression":
        metrics["train_accuracy"] = evaluate(module, data.train, loss_fn, task, ranks)[1]
    if data.test is not None:
        metrics["test_loss"], test_accuracy = evaluate(module, data.test, loss_fn, task, ranks)
        if test_accuracy is not None:
            metrics["test_accuracy"] = test_accuracy
    if spec.metrics is not None:
        splits = {"val": data.val, "test": data.test} if data.val is not None else {}
        splits = splits or {"train": data.train, "test": data.test}
        for prefix, split in splits.items():
            if split is not None:
                figures = spec.metrics(predict_split(state.module, split), split.y)
                metrics.update({f"{prefix}_{k}": v for k, v in figures.items()})
    if spec.report is not None:
        metrics.update(spec.report(state.module))
    return metrics


@torch.no_grad()
def predict_split(module: nn.Module, split: Split) -> torch.Tensor:
    """The network's outputs for every sample of ``split``, in eval mode."""
    module.eval()
    return torch.cat(
        [module(split.x[start : start + EVAL_BATCH]) for start in range(0, len(split), EVAL_BATCH)]
    )


class FitOutcome(StrEnum):
    COMPLETED = "completed"
    STOPPED_EARLY = "stopped_early"
    CANCELLED = "cancelled"
    PAUSED = "paused"


@dataclass(frozen=True)
class FitResult:
    """How ``fit`` ended; ``reason`` says why a run stopped early."""

    outcome: FitOutcome
    reason: str | None = None


def step_schedules(
    state: TrainState, options: TrainOptions, metrics: dict[str, float]
) -> str | None:
    """After an epoch: step the lr schedule and the early stopper; a reason to stop, or None.

    Both step before ``on_epoch`` so a checkpoint written there resumes them exactly.
    """
    scheduler = state.scheduler
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        metric = getattr(options.scheduler, "metric", "val_loss")
        scheduler.step(metric_value(metrics, metric, "scheduler"))
    elif scheduler is not None:
        scheduler.step()
    return state.stopper.update(state.epoch, metrics) if state.stopper is not None else None


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
    should_end: Callable[[TrainState, dict[str, float]], str | None] | None = None,
    fused_steps: bool = True,
    ranks: Ranks = SOLO,
) -> FitResult:
    """Train from ``state.epoch`` to ``options.epochs``, or until a stop rule fires.

    ``should_stop`` is read between batches (cancel: the partial epoch is dropped);
    ``should_pause`` between epochs (shutdown: the epoch finishes, so a checkpoint is exact).
    ``on_epoch`` sees each finished epoch's metrics; it raises ``Diverged`` on NaN/inf losses
    only after the metrics were handed over, so the history shows the ``null``.
    Early stopping (an option) and ``should_end`` (a caller's rule, e.g. a sweep's halving,
    read after ``on_epoch`` recorded the epoch) end the run early with a reason.
    ``fused_steps`` lets plain Linear/ReLU networks under SGD skip autograd (workers/mlp_step).
    Distributed, every rank runs this loop in step: ``ranks`` shards the data, reduces the
    figures, and makes rank 0's stop, pause and end decisions everyone's.
    """
    loss_fn = build_loss(options.loss)
    augment = spec.augment(options) if spec.augment is not None else None
    if options.batch_size and options.batch_size < len(data.train):
        shuffle_buffer(state, data.train, len(ranks.shard(torch.arange(len(data.train)))))
    while state.epoch < options.epochs:
        if ranks.decide(should_pause()):
            return FitResult(FitOutcome.PAUSED)
        lr = state.optimizer.param_groups[0]["lr"]
        started = time.perf_counter()
        train_loss = train_epoch(
            state, data.train, loss_fn, options, augment, should_stop, fused_steps, ranks
        )
        if train_loss is None:
            return FitResult(FitOutcome.CANCELLED)
        seconds = time.perf_counter() - started
        ranks.note_epoch(seconds)
        state.epoch += 1
        metrics = epoch_metrics(spec, state, data, loss_fn, train_loss, ranks)
        metrics["epoch_seconds"] = seconds
        if state.scheduler is not None:
            metrics["lr"] = lr  # the rate this epoch trained with
        reason = step_schedules(state, options, metrics)
        on_epoch(state, metrics)
        if any(not math.isfinite(metrics[k]) for k in ("train_loss", "val_loss") if k in metrics):
            raise Diverged(state.epoch)
        if reason is None:
            # Only rank 0 has the caller's rule; the others take its answer.
            reason = ranks.agree(should_end(state, metrics) if should_end is not None else None)
        if reason is not None:
            return FitResult(FitOutcome.STOPPED_EARLY, reason)
    return FitResult(FitOutcome.COMPLETED)
