"""Request and response bodies of the sweep API: search spaces, halving, leaderboards."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from torchkiln.models.common.schedules import MetricName, Mode, mode_for
from torchkiln.service.store.patterns import DEVICE_PATTERN
from torchkiln.service.store.states import StopKind, SweepState, TrialState
from torchkiln.service.store.whole_numbers import WholeNumber

MAX_TRIALS = 256


class _Strict(BaseModel):
    # Strict, like JobCreate: `"seed": false` or `"trials": "3"` is a 422, not a 0 or 3.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class Range(_Strict):
    """Random search over [low, high]; integers when both ends are integers."""

    low: int | float
    high: int | float
    scale: Literal["linear", "log"] = "linear"

    @model_validator(mode="after")
    def _check_bounds(self) -> Range:
        if not self.low < self.high:
            raise ValueError("low must be below high")
        if self.scale == "log" and self.low <= 0:
            raise ValueError("a log scale needs low > 0")
        return self


class Choice(_Strict):
    """Random search over a few values."""

    values: list[Any] = Field(min_length=1, max_length=100)


# A list is a grid axis: every value is tried with every value of the other lists.
SpaceEntry = list[Any] | Range | Choice


class Halving(_Strict):
    """Successive halving: at each rung (an epoch count) the bottom 1 - 1/eta trials stop."""

    rungs: list[Annotated[WholeNumber, Field(ge=1)]] | None = Field(
        None, min_length=1, max_length=20
    )
    min_epochs: WholeNumber | None = Field(None, ge=1, description="First rung; then x eta each.")
    eta: WholeNumber = Field(3, ge=2, le=100, description="Keep the top 1/eta at each rung.")

    @model_validator(mode="after")
    def _check_rungs(self) -> Halving:
        if (self.rungs is None) == (self.min_epochs is None):
            raise ValueError("give either rungs or min_epochs")
        return self

    def rung_epochs(self, epochs: int) -> list[int]:
        """The rungs below the trials' last epoch (a rung there would stop nothing)."""
        if self.rungs is not None:
            return sorted({r for r in self.rungs if r < epochs})
        rungs, rung = [], self.min_epochs or 1
        while rung < epochs:
            rungs.append(rung)
            rung *= self.eta
        return rungs


class SweepCreate(_Strict):
    """A search: fixed params, a space (lists: grid; ranges/choices: random), the metric."""

    model: str = Field(examples=["diabetes"])
    params: dict[str, Any] = Field(default_factory=dict, description="Fixed options.")
    space: dict[str, SpaceEntry] = Field(
        min_length=1,
        max_length=16,
        examples=[{"lr": [0.01, 0.03, 0.1], "batch_size": [16, 32]}],
        description='Per option: a list (grid), {"low", "high", "scale"} or {"values"} (random).',
    )
    trials: WholeNumber = Field(
        1, ge=1, le=MAX_TRIALS, description="Random draws per grid point (grid only: 1)."
    )
    metric: MetricName = "val_loss"
    mode: Mode | None = Field(None, description="null: from the metric name.")
    priority: WholeNumber = Field(-10, ge=-1000, le=1000, description="Below interactive jobs (0).")
    device: str = Field("auto", pattern=DEVICE_PATTERN)
    seed: WholeNumber = Field(0, ge=0, le=2**31 - 1, description="Seeds the random draws.")
    halving: Halving | None = None

    @model_validator(mode="after")
    def _default_mode(self) -> SweepCreate:
        if self.mode is None:
            self.mode = mode_for(self.metric)
        return self


class TrialPublic(BaseModel):
    rank: int = Field(description="1 = best by the sweep's metric; trials without a value last.")
    job_id: int
    params: dict[str, Any] = Field(description="This trial's values of the searched options.")
    status: TrialState = Field(description="The job's status, or pruned (stopped by halving).")
    epoch: int
    epochs: int
    best_value: float | None
    best_epoch: int | None
    stop_reason: str | None
    stop_kind: StopKind | None = Field(None, description="The kind of stop_reason.")


class SweepPublic(BaseModel):
    id: int
    model: str
    metric: str
    mode: Mode
    status: SweepState = Field(
        description="running until every trial has ended, then finished; after POST "
        "/sweeps/{id}/cancel, cancelling until its running trials stop, then cancelled."
    )
    created_at: datetime
    trials: int
    finished: int = Field(description="Trials that have ended (succeeded, pruned, failed…).")
    rungs: list[int]
    winner_job_id: int | None = Field(description="Best succeeded trial that was not pruned.")
    spec: dict[str, Any]


class SweepBoard(SweepPublic):
    leaderboard: list[TrialPublic]


class SweepsPublic(BaseModel):
    data: list[SweepPublic]
    count: int


class PromoteBody(_Strict):
    alias: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", examples=["champion"])
