"""Logistic regression on two features: two Gaussian clouds of 100 points around ±1.7, +1."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from torchkiln.models.common.options import BinaryLoss, TrainOptions
from torchkiln.models.common.registry import DataRoot, ModelSpec, Split, TrainingData, register
from torchkiln.models.common.small_data import MAX_INLINE_POINTS, FiniteFloat
from torchkiln.models.common.tensors import feature_tensors

POINTS_PER_CLOUD = 100
DATA_SEED = 4321
Point = Annotated[list[FiniteFloat], Field(min_length=2, max_length=2)]


class ClusterData(BaseModel):
    """A user's own labelled 2-D points."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    points: list[Point] = Field(min_length=1, max_length=MAX_INLINE_POINTS)
    labels: list[int] = Field(min_length=1, max_length=MAX_INLINE_POINTS)

    @model_validator(mode="after")
    def _consistent(self) -> ClusterData:
        if len(self.points) != len(self.labels):
            raise ValueError(
                f"{len(self.points)} points but {len(self.labels)} labels; they must match"
            )
        if any(label not in (0, 1) for label in self.labels):
            raise ValueError("labels must be 0 or 1")
        return self


class Clusters2dOptions(TrainOptions):
    epochs: int = Field(200, ge=1, le=100_000)
    lr: float = Field(0.1, gt=0, le=10)
    loss: BinaryLoss = "bce"
    data: ClusterData | None = Field(None, description="Your own points and 0/1 labels.")


class PointsInputs(BaseModel):
    """Prediction body: {"points": [[x1, x2], ...]}."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": [{"points": [[1.7, 1.0], [-1.7, 1.0]]}]},
    )

    points: list[Point] = Field(min_length=1, max_length=MAX_INLINE_POINTS)


class PointsAnswer(BaseModel):
    """A prediction: per point, the probability of class 1 and the label (1 when > 0.5)."""

    probabilities: list[float | None] = Field(
        description="null where not finite (coordinates beyond float32's range)."
    )
    labels: list[Annotated[int, Field(ge=0, le=1)]]


def two_clouds() -> Split:
    """Class 1 around (2.7, 2.7), class 0 around (-0.7, -0.7), unit variance, fixed seed."""
    generator = torch.Generator().manual_seed(DATA_SEED)
    centre = torch.full((POINTS_PER_CLOUD, 2), 1.7)
    positives = torch.normal(centre, 1.0, generator=generator) + 1.0
    negatives = torch.normal(-centre, 1.0, generator=generator) + 1.0
    x = torch.cat([positives, negatives])
    y = torch.cat([torch.ones(POINTS_PER_CLOUD, 1), torch.zeros(POINTS_PER_CLOUD, 1)])
    return Split(x, y)


def build(options: Clusters2dOptions) -> nn.Module:
    return nn.Linear(2, 1)


def load_data(options: Clusters2dOptions, data_root: DataRoot) -> TrainingData:
    if options.data is None:
        return TrainingData(train=two_clouds())
    x = torch.tensor(options.data.points, dtype=torch.float32)
    y = torch.tensor(options.data.labels, dtype=torch.float32).unsqueeze(1)
    return TrainingData(train=Split(x, y))


def preprocess(inputs: PointsInputs) -> torch.Tensor:
    return torch.tensor(inputs.points, dtype=torch.float32)


def postprocess(outputs: torch.Tensor) -> dict:
    probabilities = torch.sigmoid(outputs).squeeze(1)
    return {"probabilities": probabilities.tolist(), "labels": (probabilities > 0.5).int().tolist()}


def report(module: nn.Module) -> dict[str, float]:
    assert isinstance(module, nn.Linear)
    w1, w2 = module.weight.squeeze(0).tolist()
    return {"w1": w1, "w2": w2, "b": module.bias.item()}


SPEC = register(
    ModelSpec(
        name="clusters2d",
        summary="Logistic regression separating two 2-D Gaussian clouds.",
        task="binary",
        options=Clusters2dOptions,
        inputs=PointsInputs,
        build=build,
        load_data=load_data,
        preprocess=preprocess,
        postprocess=postprocess,
        answer=PointsAnswer,
        tensors=feature_tensors("points", 2, "binary"),
        report=report,
    )
)
