"""The metric a job watches to pick its best epoch, and what "better" means for it."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Watch(BaseModel):
    """``{"metric": "val_loss", "mode": "min"}``: the epoch with the lowest val_loss is best."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,63}$", description="A metric the model records per epoch."
    )
    mode: Literal["min", "max"] = Field("min", description="min: lower is better; max: higher.")

    def is_better(self, value: float, best: float | None) -> bool:
        """Strictly better, so ties keep the earlier epoch; NaN/inf never wins."""
        if not math.isfinite(value):
            return False
        if best is None:
            return True
        return value < best if self.mode == "min" else value > best
