"""Schemas and helpers shared by the small inline-data models (regression, logistic)."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from torchkiln.models.common.registry import Split, TrainingData

MAX_INLINE_POINTS = 10_000
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class XYData(BaseModel):
    """A user's own (x, y) training points, sent inline in the job's params."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    x: list[FiniteFloat] = Field(min_length=1, max_length=MAX_INLINE_POINTS)
    y: list[FiniteFloat] = Field(min_length=1, max_length=MAX_INLINE_POINTS)

    @model_validator(mode="after")
    def _same_length(self) -> XYData:
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} values but y has {len(self.y)}; they must match")
        return self


class BinaryXYData(XYData):
    """Inline data for a binary classifier: targets must be 0 or 1."""

    @model_validator(mode="after")
    def _binary_targets(self) -> BinaryXYData:
        if any(v not in (0.0, 1.0) for v in self.y):
            raise ValueError("y values must be 0 or 1")
        return self


class XInputs(BaseModel):
    """Prediction body for the one-feature models: {"x": [4.0, 5.0]}."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, json_schema_extra={"examples": [{"x": [4.0, 5.0]}]}
    )

    x: list[FiniteFloat] = Field(min_length=1, max_length=MAX_INLINE_POINTS)


def column_split(x: list[float], y: list[float]) -> TrainingData:
    """One-feature data as (N, 1) float32 tensors."""
    tx = torch.tensor(x, dtype=torch.float32).unsqueeze(1)
    ty = torch.tensor(y, dtype=torch.float32).unsqueeze(1)
    return TrainingData(train=Split(tx, ty))


def column(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).unsqueeze(1)
