"""y = w1·x² + w2·x + b, fitted on points of (x - 1)² or the user's own."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from torchkiln.models.common.options import OptimizerName, RegressionLoss, TrainOptions
from torchkiln.models.common.registry import DataRoot, ModelSpec, Split, TrainingData, register
from torchkiln.models.common.small_data import XInputs, XYData, column
from torchkiln.models.common.tensors import feature_tensors
from torchkiln.models.linear import YAnswer, postprocess

DEFAULT_X = [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
DEFAULT_Y = [(x - 1.0) ** 2 for x in DEFAULT_X]


class QuadraticOptions(TrainOptions):
    epochs: int = Field(2000, ge=1, le=100_000)
    optimizer: OptimizerName = "adam"
    lr: float = Field(0.05, gt=0, le=10)
    loss: RegressionLoss = "mse"
    data: XYData | None = Field(None, description="Your own points; default y = (x - 1)².")


class Quadratic(nn.Module):
    """A linear layer over the features (x², x)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([x * x, x], dim=1))


def build(options: QuadraticOptions) -> nn.Module:
    return Quadratic()


def load_data(options: QuadraticOptions, data_root: DataRoot) -> TrainingData:
    data = options.data
    x, y = (data.x, data.y) if data is not None else (DEFAULT_X, DEFAULT_Y)
    return TrainingData(train=Split(column(x), column(y)))


def preprocess(inputs: XInputs) -> torch.Tensor:
    return column(inputs.x)


def report(module: nn.Module) -> dict[str, float]:
    assert isinstance(module, Quadratic)
    w1, w2 = module.linear.weight.squeeze(0).tolist()
    return {"w1": w1, "w2": w2, "b": module.linear.bias.item()}


SPEC = register(
    ModelSpec(
        name="quadratic",
        summary="Polynomial regression y = w1·x² + w2·x + b.",
        task="regression",
        options=QuadraticOptions,
        inputs=XInputs,
        build=build,
        load_data=load_data,
        preprocess=preprocess,
        postprocess=postprocess,
        answer=YAnswer,
        tensors=feature_tensors("x", 1, "regression"),
        report=report,
    )
)
