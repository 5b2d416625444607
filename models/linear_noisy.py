"""y = w·x + b fitted to 100 noisy points of y = 2x + 3 + N(0, 2²), x in [0, 10], fixed seed."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from torchkiln.models.common.options import RegressionLoss, TrainOptions
from torchkiln.models.common.registry import DataRoot, ModelSpec, Split, TrainingData, register
from torchkiln.models.common.small_data import XInputs, XYData, column_split
from torchkiln.models.common.tensors import feature_tensors
from torchkiln.models.linear import YAnswer, postprocess, preprocess, report

N_POINTS = 100
DATA_SEED = 1234


class LinearNoisyOptions(TrainOptions):
    epochs: int = Field(2000, ge=1, le=100_000)
    lr: float = Field(0.01, gt=0, le=10)
    loss: RegressionLoss = "mse"
    data: XYData | None = Field(None, description="Your own points instead of the noisy line.")


def noisy_line() -> Split:
    """The fixed data set: its own generator, so it never depends on the job's seed."""
    generator = torch.Generator().manual_seed(DATA_SEED)
    x = torch.rand(N_POINTS, 1, generator=generator) * 10.0
    y = 2.0 * x + 3.0 + 2.0 * torch.randn(N_POINTS, 1, generator=generator)
    return Split(x, y)


def build(options: LinearNoisyOptions) -> nn.Module:
    return nn.Linear(1, 1)


def load_data(options: LinearNoisyOptions, data_root: DataRoot) -> TrainingData:
    if options.data is not None:
        return column_split(options.data.x, options.data.y)
    return TrainingData(train=noisy_line())


SPEC = register(
    ModelSpec(
        name="linear_noisy",
        summary="Linear regression y = w·x + b on 100 noisy points of y = 2x + 3.",
        task="regression",
        options=LinearNoisyOptions,
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
