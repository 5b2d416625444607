"""Logistic regression "hours studied → passes": x = [1, 2, 3] hours, y = [0, 0, 1]."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from torchkiln.models.common.options import BinaryLoss, TrainOptions
from torchkiln.models.common.registry import DataRoot, ModelSpec, TrainingData, register
from torchkiln.models.common.small_data import (
    MAX_INLINE_POINTS,
    BinaryXYData,
    FiniteFloat,
    column,
    column_split,
)
from torchkiln.models.common.tensors import feature_tensors
from torchkiln.models.linear import report

DEFAULT_HOURS = [1.0, 2.0, 3.0]
DEFAULT_PASSED = [0.0, 0.0, 1.0]


class LogisticHoursOptions(TrainOptions):
    epochs: int = Field(1000, ge=1, le=100_000)
    lr: float = Field(0.1, gt=0, le=10)
    loss: BinaryLoss = "bce"
    data: BinaryXYData | None = Field(
        None, description="Your own (hours, passed 0/1) points; default [1,2,3] → [0,0,1]."
    )


class HoursInputs(BaseModel):
    """Prediction body: {"hours": [1.0, 2.5, 4.0]}."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": [{"hours": [1.0, 2.5, 4.0]}]},
    )

    hours: list[FiniteFloat] = Field(min_length=1, max_length=MAX_INLINE_POINTS)


class HoursAnswer(BaseModel):
    """A prediction: per number of hours, the probability of passing and whether that is > 0.5."""

    probabilities: list[float | None] = Field(description="null where not finite.")
    passes: list[bool]


def build(options: LogisticHoursOptions) -> nn.Module:
    # Outputs a logit: the loss is BCE-with-logits and prediction applies the sigmoid.
    return nn.Linear(1, 1)


def load_data(options: LogisticHoursOptions, data_root: DataRoot) -> TrainingData:
    data = options.data
    return column_split(
        *((data.x, data.y) if data is not None else (DEFAULT_HOURS, DEFAULT_PASSED))
    )


def preprocess(inputs: HoursInputs) -> torch.Tensor:
    return column(inputs.hours)


def postprocess(outputs: torch.Tensor) -> dict:
    probabilities = torch.sigmoid(outputs).squeeze(1)
    return {"probabilities": probabilities.tolist(), "passes": (probabilities > 0.5).tolist()}


SPEC = register(
    ModelSpec(
        name="logistic_hours",
        summary="Logistic regression: hours of study → probability of passing.",
        task="binary",
        options=LogisticHoursOptions,
        inputs=HoursInputs,
        build=build,
        load_data=load_data,
        preprocess=preprocess,
        postprocess=postprocess,
        answer=HoursAnswer,
        tensors=feature_tensors("hours", 1, "binary"),
        report=report,
    )
)
