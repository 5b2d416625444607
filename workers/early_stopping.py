"""Early stopping: ends a run whose watched metric stopped improving, and says why."""

from __future__ import annotations

import math
from typing import Any

from torchkiln.models.common.schedules import EarlyStopping
from torchkiln.service.store.states import EARLY_STOPPED


class MetricMissing(Exception):
    """An option names a metric the model does not record; the message lists those it does."""

    def __init__(self, option: str, metric: str, known: list[str]) -> None:
        super().__init__(
            f"{option} metric {metric!r} is not recorded by this model; "
            f"it records: {', '.join(sorted(known))}"
        )


def metric_value(metrics: dict[str, float], metric: str, option: str) -> float:
    if metric not in metrics:
        raise MetricMissing(option, metric, list(metrics))
    return metrics[metric]


class EarlyStopper:
    """Counts epochs without an improvement larger than ``min_delta`` over the best so far.

    Its state is saved in checkpoints, so a resumed job stops at the same epoch.
    """

    def __init__(self, rule: EarlyStopping) -> None:
        self.rule = rule
        self.best: float | None = None
        self.best_epoch = 0
        self.stale_epochs = 0

    def is_improvement(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        gain = self.best - value if self.rule.mode == "min" else value - self.best
        return gain > self.rule.min_delta

    def update(self, epoch: int, metrics: dict[str, float]) -> str | None:
        """Record an epoch; the reason to stop, or None to go on."""
        value = metric_value(metrics, self.rule.metric, "early_stopping")
        if self.is_improvement(value):
            self.best, self.best_epoch, self.stale_epochs = value, epoch, 0
            return None
        self.stale_epochs += 1
        if self.stale_epochs < self.rule.patience:
            return None
        best = "none" if self.best is None else f"{self.best:.4g}"
        return (
            f"{EARLY_STOPPED}: {self.rule.metric} did not improve by {self.rule.min_delta} "
            f"for {self.rule.patience} epochs (best {best} at epoch {self.best_epoch})"
        )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "stale": self.stale_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.best_epoch, self.stale_epochs = int(state["best_epoch"]), int(state["stale"])
