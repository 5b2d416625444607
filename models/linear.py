"""y = w·x (optionally + b), fitted on x = [1, 2, 3], y = [2, 4, 6] or the user's own points."""

from __future__ import annotations

import torch
from pydantic import BaseModel, Field
from torch import nn

from torchkiln.models.common.options import RegressionLoss, TrainOptions
from torchkiln.models.common.registry import DataRoot, ModelSpec, TrainingData, register
from torchkiln.models.common.small_data import XInputs, XYData, column, column_split
from torchkiln.models.common.tensors import feature_tensors

DEFAULT_X = [1.0, 2.0, 3.0]
DEFAULT_Y = [2.0, 4.0, 6.0]


class LinearOptions(TrainOptions):
    epochs: int = Field(1000, ge=1, le=100_000)
    lr: float = Field(0.01, gt=0, le=10)
    loss: RegressionLoss = "mse"
    bias: bool = Field(False, description="Fit y = w·x + b instead of y = w·x.")
    data: XYData | None = Field(None, description="Your own points; default x=[1,2,3], y=[2,4,6].")


class YAnswer(BaseModel):
    """A prediction: {"y": [8.0, 10.0]}, one value per x."""

    y: list[float | None] = Field(description="null where not finite (x beyond float32's range).")


def build(options: LinearOptions) -> nn.Module:
    return nn.Linear(1, 1, bias=options.bias)


def load_data(options: LinearOptions, data_root: DataRoot) -> TrainingData:
    if options.data is not None:
        return column_split(options.data.x, options.data.y)
    return column_split(DEFAULT_X, DEFAULT_Y)


def preprocess(inputs: XInputs) -> torch.Tensor:
    return column(inputs.x)


def postprocess(outputs: torch.Tensor) -> dict:
    return {"y": outputs.squeeze(1).tolist()}


def report(module: nn.Module) -> dict[str, float]:
    assert isinstance(module, nn.Linear)
    values = {"w": module.weight.item()}
    if module.bias is not None:
        values["b"] = module.bias.item()
    return values


SPEC = register(
    ModelSpec(
        name="linear",
        summary="Linear regression y = w·x (+ b with bias=true).",
        task="regression",
        options=LinearOptions,
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
