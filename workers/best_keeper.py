"""The best epoch so far by the job's watched metric, and its weights until they are saved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torchkiln.models.common.watched_metric import Watch
from torchkiln.workers.early_stopping import metric_value
from torchkiln.workers.training import TrainState


@dataclass
class BestKeeper:
    """Snapshots the weights of each new best epoch in memory; the worker writes the pending
    one at its next checkpoint, so a run that improves every epoch costs one copy per epoch,
    not one file per epoch."""

    watch: Watch | None
    keep_last: int = 1
    keep_best: int = 1
    epoch: int | None = None
    value: float | None = None
    pending: dict[str, Any] | None = None

    def observe(self, state: TrainState, metrics: dict[str, float], model_name: str) -> None:
        if self.watch is None:
            return
        # Refused like early stopping's metric: a typo would otherwise keep no best at all.
        value = metric_value(metrics, self.watch.metric, "watch")
        if not self.watch.is_better(value, self.value):
            return
        self.epoch, self.value = state.epoch, value
        weights = {k: v.detach().clone() for k, v in state.module.state_dict().items()}
        self.pending = {"model_name": model_name, "epoch": state.epoch, "model": weights}

    def take_pending(self) -> dict[str, Any] | None:
        pending, self.pending = self.pending, None
        return pending
