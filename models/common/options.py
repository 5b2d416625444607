"""Job options shared by every model: optimizer, schedule, seed. Models subclass these."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from torchkiln.models.common.schedules import (
    CosineSchedule,
    EarlyStopping,
    PlateauSchedule,
    Schedule,
    StepSchedule,
)
from torchkiln.models.common.watched_metric import Watch

# Devices whose fused optimizer kernels torch ships for SGD and Adam (Adagrad: CPU only).
FUSED_DEVICES = frozenset({"cpu", "cuda"})
OptimizerName = Literal["sgd", "adam", "adagrad", "adamax", "asgd", "lbfgs", "rmsprop", "rprop"]
RegressionLoss = Literal["mse", "l1", "smooth_l1"]
BinaryLoss = Literal["bce"]
ClassificationLoss = Literal["cross_entropy"]

# Optimizers whose torch class has no weight_decay / momentum argument.
_NO_WEIGHT_DECAY = {"lbfgs", "rprop"}
_HAS_MOMENTUM = {"sgd", "rmsprop"}


class Distributed(BaseModel):
    """One job over several processes (torch.distributed): the global batch stays the spec's."""

    model_config = ConfigDict(extra="forbid")

    nodes: int = Field(
        1, ge=1, le=16, description="Hosts: one worker on each, gang-scheduled by the queue."
    )
    procs_per_node: int = Field(
        1, ge=1, le=8, description="Processes on the host: one per GPU, or CPU processes (gloo)."
    )

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node


class TrainOptions(BaseModel):
    """Options every job accepts. Unknown keys and NaN/inf numbers are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    epochs: int = Field(100, ge=1, le=100_000, description="Passes over the training set.")
    optimizer: OptimizerName = Field("sgd", description="torch.optim algorithm.")
    lr: float = Field(0.01, gt=0, le=10, description="Learning rate.")
    momentum: float = Field(0.0, ge=0, lt=1, description="Momentum (sgd, rmsprop only).")
    weight_decay: float = Field(0.0, ge=0, le=1, description="L2 penalty (not lbfgs/rprop).")
    batch_size: int | None = Field(
        None, ge=1, le=65_536, description="Mini-batch size; null trains on the full set."
    )
    grad_clip_norm: float | None = Field(
        None, gt=0, le=1e6, description="Clip the gradient's global L2 norm to this."
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds torch for init and shuffling.")
    checkpoint_every: int | None = Field(
        None, ge=1, le=100_000, description="Epochs between checkpoints; null: about ten a job."
    )
    init_from: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,  # a job id: the service's row ids are 32-bit
        description="Start from the weights of this earlier succeeded job.",
    )
    early_stopping: EarlyStopping | None = Field(
        None, description='Stop when a metric stalls, e.g. {"metric": "val_loss", "patience": 5}.'
    )
    scheduler: Schedule | None = Field(
        None, description='Learning-rate schedule, e.g. {"kind": "step", "step_size": 10}.'
    )
    watch: Watch | None = Field(
        None, description="Keep a best checkpoint by this metric; prediction then uses it."
    )
    keep_last: int = Field(1, ge=1, le=1000, description="Newest checkpoints kept for resume.")
    keep_best: int = Field(1, ge=1, le=1000, description="Best checkpoints kept (with watch).")
    distributed: Distributed | None = Field(
        None,
        description='Train across processes, e.g. {"nodes": 1, "procs_per_node": 2}; '
        "each takes batch_size / processes of every batch.",
    )
    preset: Literal["default", "seed"] = Field(
        "default",
        description='"seed": the seed tutorial\'s exact recipe for options not given here '
        "(where torchkiln's defaults differ from it); default: defaults tuned to train well.",
    )

    # The seed tutorial's own hyper-parameters where this model's defaults differ from them.
    SEED_RECIPE: ClassVar[dict[str, Any]] = {}

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, params: Any) -> Any:
        if isinstance(params, dict) and params.get("preset") == "seed":
            return {**cls.SEED_RECIPE, **params}
        return params

    @model_validator(mode="after")
    def _check_optimizer_arguments(self) -> TrainOptions:
        if self.weight_decay and self.optimizer in _NO_WEIGHT_DECAY:
            raise ValueError(
                f"weight_decay is not supported by optimizer {self.optimizer!r}; "
                "set it to 0 or pick another optimizer"
            )
        if self.momentum and self.optimizer not in _HAS_MOMENTUM:
            raise ValueError(
                f"momentum applies to sgd and rmsprop only, not {self.optimizer!r}; set it to 0"
            )
        return self

    @model_validator(mode="after")
    def _check_distributed(self) -> TrainOptions:
        world = self.world_size()
        if world == 1:
            return self
        if self.batch_size is not None and self.batch_size % world:
            raise ValueError(
                f"batch_size {self.batch_size} does not split over {world} processes; "
                f"make it a multiple of {world}"
            )
        if self.optimizer == "lbfgs":
            # Its line search evaluates each rank's own loss a rank-dependent number of times.
            raise ValueError("optimizer 'lbfgs' cannot train distributed; pick another")
        return self

    def world_size(self) -> int:
        return 1 if self.distributed is None else self.distributed.world_size

    def checkpoint_interval(self) -> int:
        return self.checkpoint_every or max(1, self.epochs // 10)


def build_optimizer(
    options: TrainOptions, parameters: Iterable[nn.Parameter]
) -> torch.optim.Optimizer:
    """The torch optimizer the options name, with their lr, momentum and weight decay."""
    params = list(parameters)
    lr, wd, momentum = options.lr, options.weight_decay, options.momentum
    match options.optimizer:
        case "sgd":
            return _fused_where_supported(
                torch.optim.SGD, params, lr=lr, momentum=momentum, weight_decay=wd
            )
        case "adam":
            return _fused_where_supported(torch.optim.Adam, params, lr=lr, weight_decay=wd)
        case "adagrad":
            return _fused_where_supported(torch.optim.Adagrad, params, lr=lr, weight_decay=wd)
        case "adamax":
            return torch.optim.Adamax(params, lr=lr, weight_decay=wd)
        case "asgd":
            return torch.optim.ASGD(params, lr=lr, weight_decay=wd)
        case "lbfgs":
            return torch.optim.LBFGS(params, lr=lr)
        case "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=wd)
        case "rprop":
            return torch.optim.Rprop(params, lr=lr)
    raise ValueError(f"unknown optimizer {options.optimizer!r}")


def _fused_where_supported(
    optimizer: type[torch.optim.Optimizer], params: list[nn.Parameter], **settings: float
) -> torch.optim.Optimizer:
    """One fused kernel per step on CPU and CUDA, where torch has them.

    The update is memory-bound: fused, an SGD step over mnist_mlp's 575k weights reads and
    writes each tensor once instead of three times (190 -> 105 us a step on CPU). Other
    devices, and optimizer/device pairs torch refuses (Adagrad on CUDA), get the default.
    """
    if all(p.device.type in FUSED_DEVICES for p in params):
        try:
            return optimizer(params, fused=True, **settings)
        except RuntimeError:
            pass
    return optimizer(params, **settings)


LRSchedule = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


def build_scheduler(options: TrainOptions, optimizer: torch.optim.Optimizer) -> LRSchedule | None:
    """The lr scheduler the options name, stepped once per epoch; None without one."""
    schedule, lr_scheduler = options.scheduler, torch.optim.lr_scheduler
    match schedule:
        case None:
            return None
        case StepSchedule():
            return lr_scheduler.StepLR(optimizer, schedule.step_size, gamma=schedule.gamma)
        case CosineSchedule():
            t_max = schedule.t_max or options.epochs
            return lr_scheduler.CosineAnnealingLR(optimizer, t_max, eta_min=schedule.eta_min)
        case PlateauSchedule():
            return lr_scheduler.ReduceLROnPlateau(
                optimizer, schedule.mode, factor=schedule.factor, patience=schedule.patience
            )
    raise ValueError(f"unknown scheduler {schedule!r}")


def build_loss(name: str) -> nn.Module:
    """Loss module by option name. Binary models output logits, so "bce" is with-logits."""
    losses: dict[str, type[nn.Module]] = {
        "mse": nn.MSELoss,
        "l1": nn.L1Loss,
        "smooth_l1": nn.SmoothL1Loss,
        "bce": nn.BCEWithLogitsLoss,
        "cross_entropy": nn.CrossEntropyLoss,
    }
    return losses[name]()
