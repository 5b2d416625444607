"""Where this process stands among a job's training processes: alone, unless the job is
distributed (workers/distributed.py). ``fit`` asks it to shard, reduce and agree."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import torch

if TYPE_CHECKING:
    from torchkiln.workers.training import TrainState

T = TypeVar("T")


class Ranks:
    """A job trained by one process: every collective is the identity."""

    rank = 0
    world = 1
    # Batches between cancel checks: free alone, a collective each when distributed.
    stop_check_every = 1

    def shard(self, order: torch.Tensor) -> torch.Tensor:
        """This rank's part of an epoch's order of the training rows."""
        return order

    def mean(self, total: torch.Tensor, count: int) -> float:
        """Mean over all ranks of what each summed over ``count`` samples."""
        return (total / count).item()

    def sums(self, *values: float) -> tuple[float, ...]:
        """Each value summed over all ranks."""
        return values

    def decide(self, flag: bool) -> bool:
        """Rank 0's flag, seen by every rank (they stop, pause and end together)."""
        return flag

    def agree(self, value: T) -> T:
        """Rank 0's value (picklable), seen by every rank."""
        return value

    def share(self, state: TrainState, model_name: str) -> None:
        """Give every rank rank 0's state (resumed or fresh), then wrap it for training."""

    def augment_generator(self, state: TrainState) -> torch.Generator:
        return state.generator

    def before_eval(self, module: torch.nn.Module) -> None:
        """Make the module's buffers (batch-norm statistics) rank 0's on every rank."""

    def note_epoch(self, seconds: float) -> None:
        """This rank's training time of the epoch just done (for per-rank throughput)."""


SOLO = Ranks()
