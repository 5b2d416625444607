"""What a table model answers: per-row classes or values, their tensors, regression metrics.

Shared by ``tabular`` and by ``sequential`` networks on an uploaded table: both read a
``TablePlan``'s task and classes and answer the same way.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from pydantic import BaseModel

from torchkiln.models.common.registry import Task, TensorSignature, TensorSpec
from torchkiln.models.common.tabular_data import TablePlan
from torchkiln.models.common.tensors import feature_tensors


class RowClassPrediction(BaseModel):
    label: str
    probability: float
    probabilities: dict[str, float]


class RowValuePrediction(BaseModel):
    value: float


class TabularClassAnswer(BaseModel):
    """A classifier's answer: per row, the likeliest class and every class's probability."""

    predictions: list[RowClassPrediction]


class TabularValueAnswer(BaseModel):
    """A regression's answer: per row, the predicted value in the target's units."""

    predictions: list[RowValuePrediction]


def regression_metrics(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """RMSE, MAE and R² of predictions against targets."""
    error = (outputs.double() - targets.double()).view(-1)
    centred = targets.double().view(-1) - targets.double().mean()
    total = float((centred**2).sum())
    return {
        "rmse": math.sqrt(float((error**2).mean())),
        "mae": float(error.abs().mean()),
        "r2": 1 - float((error**2).sum()) / total if total > 0 else 0.0,
    }


def class_postprocess(classes: tuple[str, ...], task: Task) -> Any:
    def postprocess(outputs: torch.Tensor) -> dict[str, Any]:
        if task == "binary":
            positive = torch.sigmoid(outputs.float().view(-1, 1))
            probabilities = torch.cat([1 - positive, positive], dim=1)
        else:
            probabilities = torch.softmax(outputs.float(), dim=1)
        best = probabilities.argmax(dim=1).tolist()
        return {
            "predictions": [
                {
                    "label": classes[i],
                    "probability": row[i],
                    "probabilities": dict(zip(classes, row, strict=True)),
                }
                for i, row in zip(best, probabilities.tolist(), strict=True)
            ]
        }

    return postprocess


def value_postprocess(outputs: torch.Tensor) -> dict[str, Any]:
    return {"predictions": [{"value": v} for v in outputs.float().view(-1).tolist()]}


def class_tensors(width: int, classes: tuple[str, ...]) -> TensorSignature:
    """Features in; softmax ``probabilities`` and the argmax ``label`` out."""

    def from_outputs(raw: torch.Tensor) -> dict[str, torch.Tensor]:
        probabilities = torch.softmax(raw.float(), dim=1)
        return {"probabilities": probabilities, "label": probabilities.argmax(dim=1)}

    return TensorSignature(
        inputs=(TensorSpec("features", "FP32", (-1, width)),),
        outputs=(
            TensorSpec("probabilities", "FP32", (-1, len(classes))),
            TensorSpec("label", "INT64", (-1,)),
        ),
        to_batch=lambda tensors: tensors["features"].float(),
        from_outputs=from_outputs,
        classes=classes,
    )


def table_tensors(plan: TablePlan) -> TensorSignature:
    """Encoded feature rows (numeric raw, categorical indices) in; the task's outputs."""
    width = len(plan.features)
    if plan.task == "multiclass":
        return class_tensors(width, plan.classes)
    signature = feature_tensors("features", width, plan.task, output="value")
    return dataclasses.replace(signature, classes=plan.classes or None)
