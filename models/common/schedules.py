"""Option shapes for learning-rate schedules and early stopping (validated, no torch here)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Mode = Literal["min", "max"]
MetricName = Annotated[
    str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="A metric the model records.")
]


def mode_for(metric: str) -> Mode:
    """The direction a metric improves in, from its name: losses go down, accuracies up."""
    if metric.endswith("loss"):
        return "min"
    if metric.endswith("accuracy"):
        return "max"
    raise ValueError(f"cannot tell whether {metric!r} should go up or down; set mode")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class EarlyStopping(_Strict):
    """Stop when ``metric`` has not improved by more than ``min_delta`` for ``patience`` epochs."""

    metric: MetricName = "val_loss"
    patience: int = Field(5, ge=1, le=100_000)
    min_delta: float = Field(0.0, ge=0)
    mode: Mode | None = Field(None, description="min or max; null: from the metric's name.")

    @model_validator(mode="after")
    def _default_mode(self) -> EarlyStopping:
        if self.mode is None:
            self.mode = mode_for(self.metric)
        return self


class StepSchedule(_Strict):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs."""

    kind: Literal["step"]
    step_size: int = Field(10, ge=1, le=100_000)
    gamma: float = Field(0.1, gt=0, le=1)


class CosineSchedule(_Strict):
    """Cosine annealing from the lr to ``eta_min`` over ``t_max`` epochs (null: all of them)."""

    kind: Literal["cosine"]
    t_max: int | None = Field(None, ge=1, le=100_000)
    eta_min: float = Field(0.0, ge=0)


class PlateauSchedule(_Strict):
    """Multiply the lr by ``factor`` when ``metric`` stalls for ``patience`` epochs."""

    kind: Literal["plateau"]
    metric: MetricName = "val_loss"
    factor: float = Field(0.1, gt=0, lt=1)
    patience: int = Field(3, ge=0, le=100_000)
    mode: Mode | None = None

    @model_validator(mode="after")
    def _default_mode(self) -> PlateauSchedule:
        if self.mode is None:
            self.mode = mode_for(self.metric)
        return self


Schedule = Annotated[StepSchedule | CosineSchedule | PlateauSchedule, Field(discriminator="kind")]
