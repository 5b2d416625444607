"""The 8→6→4→1 sigmoid network on the scaled Pima Indians diabetes table (758 rows)."""

from __future__ import annotations

import gzip
import importlib.resources
from functools import lru_cache
from typing import Annotated

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from torchkiln.models.common.datasets import DatasetOptions, split_off_validation
from torchkiln.models.common.options import BinaryLoss
from torchkiln.models.common.registry import DataRoot, ModelSpec, Split, TrainingData, register
from torchkiln.models.common.tensors import feature_tensors

N_FEATURES = 8
MAX_ROWS = 10_000
Feature = Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)]
Row = Annotated[list[Feature], Field(min_length=N_FEATURES, max_length=N_FEATURES)]
EXAMPLE_ROW = [-0.29, 0.49, 0.18, -0.29, 0.0, 0.0, -0.53, -0.03]


class DiabetesOptions(DatasetOptions):
    epochs: int = Field(100, ge=1, le=100_000)
    lr: float = Field(0.1, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    batch_size: int | None = Field(32, ge=1, le=65_536, description="Mini-batch size.")
    val_fraction: float = Field(
        0.2, ge=0, le=0.5, description="Share of the rows held out for validation."
    )
    loss: BinaryLoss = "bce"


class DiabetesInputs(BaseModel):
    """Prediction body: {"features": [[8 values scaled to [-1, 1]], ...]}."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"examples": [{"features": [EXAMPLE_ROW]}]},
    )

    features: list[Row] = Field(min_length=1, max_length=MAX_ROWS)


class DiabetesAnswer(BaseModel):
    """A prediction: per row of features, the probability of diabetes."""

    probabilities: list[float]


def build(options: DiabetesOptions) -> nn.Module:
    layers: list[nn.Module] = []
    widths = [N_FEATURES, 6, 4]
    for width_in, width_out in zip(widths, widths[1:], strict=False):
        layers += [nn.Linear(width_in, width_out), nn.Sigmoid()]
        if options.dropout:
            layers.append(nn.Dropout(options.dropout))
    # The last layer outputs a logit: the loss is BCE-with-logits, prediction applies sigmoid.
    layers.append(nn.Linear(widths[-1], 1))
    return nn.Sequential(*layers)


@lru_cache(maxsize=1)
def diabetes_table() -> Split:
    """The shipped table: (758, 8) float32 features in [-1, 1] and (758, 1) float 0/1 labels."""
    resource = importlib.resources.files("torchkiln.models") / "data" / "diabetes.csv.gz"
    with resource.open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.float32)
    x, y = torch.from_numpy(table[:, :-1].copy()), torch.from_numpy(table[:, -1:].copy())
    return Split(x, y)


def load_data(options: DiabetesOptions, data_root: DataRoot) -> TrainingData:
    table = diabetes_table()
    train, val = split_off_validation(table.x, table.y, options.val_fraction)
    return TrainingData(train=train, val=val)


def preprocess(inputs: DiabetesInputs) -> torch.Tensor:
    return torch.tensor(inputs.features, dtype=torch.float32)


def postprocess(outputs: torch.Tensor) -> dict:
    return {"probabilities": torch.sigmoid(outputs).squeeze(1).tolist()}


SPEC = register(
    ModelSpec(
        name="diabetes",
        summary="8→6→4→1 sigmoid MLP: diabetes onset from 8 scaled clinical features.",
        task="binary",
        options=DiabetesOptions,
        inputs=DiabetesInputs,
        build=build,
        load_data=load_data,
        preprocess=preprocess,
        postprocess=postprocess,
        answer=DiabetesAnswer,
        tensors=feature_tensors("features", N_FEATURES, "binary"),
    )
)
