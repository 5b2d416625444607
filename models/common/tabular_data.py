"""Uploaded tables as model input: which columns a job uses, its task, and rows as tensors.

Every row becomes floats, one per feature: a numeric column's raw value (NaN where missing),
a categorical or boolean column's index in the schema's sorted categories (the category
count, the reserved "unknown" index, for a value the schema does not list or a missing one).
The network's first module (``tabular_network``) standardises and encodes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from torchkiln.models.common.registry import DataUnavailable, Task

ColumnKind = Literal["numeric", "categorical"]
# A numeric target with this many distinct values or fewer may be read as classes.
MAX_CLASS_VALUES = 20


@dataclass(frozen=True)
class Column:
    """One feature: its name, how it is encoded and (categorical) its vocabulary."""

    name: str
    kind: ColumnKind
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class TablePlan:
    """What a job reads from its table: features in order, the target, task and classes."""

    features: tuple[Column, ...]
    target: str
    task: Task
    classes: tuple[str, ...]  # class labels in output order; () for regression
    target_kind: str  # the target column's schema type


def schema_columns(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {column["name"]: column for column in schema.get("columns", [])}


def infer_task(column: dict[str, Any], task: Task | None) -> Task:
    """The task a target column implies; a given ``task`` must fit the column."""
    kind, distinct = column["type"], int(column.get("distinct", 0))
    name = column["name"]
    if kind == "text":
        raise ValueError(f"target {name!r} is a text column (too many distinct values to classify)")
    if kind in ("boolean", "categorical"):
        classes = len(column.get("categories", []))
        if classes < 2:
            raise ValueError(f"target {name!r} has {classes} class; classification needs 2 or more")
        inferred: Task = "binary" if classes == 2 else "multiclass"
        if task is None or task == inferred:
            return inferred
        if task == "regression":
            raise ValueError(f"target {name!r} is {kind}; regression needs a numeric target")
        raise ValueError(f"target {name!r} has {classes} classes: use task {inferred!r}")
    # Numeric: two values (0/1) are a binary label; otherwise regression unless asked.
    if task is None:
        return "binary" if distinct == 2 else "regression"
    if task != "regression" and not 2 <= distinct <= MAX_CLASS_VALUES:
        raise ValueError(
            f"target {name!r} has {distinct} distinct values; as classes it needs 2 to "
            f"{MAX_CLASS_VALUES}: use task 'regression'"
        )
    if task == "binary" and distinct != 2:
        raise ValueError(f"target {name!r} has {distinct} distinct values: use task 'multiclass'")
    return task


def plan_table(
    schema: dict[str, Any], target: str, features: list[str] | None, task: Task | None
) -> TablePlan:
    """Check the job's columns against the schema (ValueError naming what to fix)."""
    columns = schema_columns(schema)
    available = ", ".join(columns)
    if target not in columns:
        raise ValueError(f"target {target!r} is not a column of the dataset; columns: {available}")
    if features is not None:
        unknown = [name for name in features if name not in columns]
        if unknown:
            raise ValueError(
                f"features {', '.join(map(repr, unknown))} are not columns of the dataset; "
                f"columns: {available}"
            )
        if target in features:
            raise ValueError(f"features: {target!r} is the target; leave it out of the features")
        text = [name for name in features if columns[name]["type"] == "text"]
        if text:
            raise ValueError(
                f"features {', '.join(map(repr, text))} are text columns (over 1000 distinct "
                "values), which cannot be used; leave them out"
            )
        chosen = list(dict.fromkeys(features))
    else:
        chosen = [n for n, c in columns.items() if n != target and c["type"] != "text"]
    if not chosen:
        raise ValueError("no usable feature columns: the table has only the target and text")
    task_of = infer_task(columns[target], task)
    plan_features = tuple(_column(columns[name]) for name in chosen)
    target_column = columns[target]
    if task_of == "regression":
        classes: tuple[str, ...] = ()
    elif target_column["type"] == "numeric":
        # Class i is the value i: the labels are checked against the data when it is read.
        classes = tuple(str(i) for i in range(int(target_column["distinct"])))
    else:
        classes = tuple(target_column["categories"])
    return TablePlan(plan_features, target, task_of, classes, target_column["type"])


def _column(column: dict[str, Any]) -> Column:
    if column["type"] == "numeric":
        return Column(column["name"], "numeric")
    return Column(column["name"], "categorical", tuple(column.get("categories", [])))


def category_key(value: Any) -> str | None:
    """A raw cell as the schema spells categories: booleans "true"/"false", others str()."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _category_lookup(column: Column) -> dict[str, int]:
    lookup = {name: i for i, name in enumerate(column.categories)}
    # Booleans arrive as true/True/TRUE alike.
    lookup.update({name.lower(): i for name, i in lookup.items() if name.lower() not in lookup})
    return lookup


def _numeric(value: Any, name: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value) if value.strip() else math.nan
        except ValueError:
            pass
    raise ValueError(f"{name!r} must be a number, got {value!r}")


def encode_rows(plan: TablePlan, rows: list[dict[str, Any]]) -> torch.Tensor:
    """Raw JSON rows → (N, features) float32; a missing feature is a ValueError naming it."""
    lookups = {c.name: _category_lookup(c) for c in plan.features if c.kind == "categorical"}
    out = np.empty((len(rows), len(plan.features)), dtype=np.float32)
    for i, row in enumerate(rows):
        missing = [c.name for c in plan.features if c.name not in row]
        if missing:
            raise ValueError(f"rows[{i}]: missing feature(s) {', '.join(map(repr, missing))}")
        for j, column in enumerate(plan.features):
            value = row[column.name]
            if column.kind == "numeric":
                try:
                    out[i, j] = _numeric(value, column.name)
                except ValueError as error:
                    raise ValueError(f"rows[{i}]: {error}") from None
            else:
                key = category_key(value)
                lookup = lookups[column.name]
                index = lookup.get(key, lookup.get(key.lower(), -1)) if key is not None else -1
                out[i, j] = index if index >= 0 else len(column.categories)
    return torch.from_numpy(out)


def encode_table(plan: TablePlan, table: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A pyarrow table → (features float32, targets); classification targets are indices."""
    missing = [c.name for c in plan.features if c.name not in table.column_names]
    if plan.target not in table.column_names:
        missing.append(plan.target)
    if missing:
        raise DataUnavailable(f"the table lacks column(s) {', '.join(missing)}")
    x = np.empty((table.num_rows, len(plan.features)), dtype=np.float32)
    for j, column in enumerate(plan.features):
        x[:, j] = _column_values(column, table.column(column.name))
    return torch.from_numpy(x), _targets(plan, table.column(plan.target))


def _column_values(column: Column, data: Any) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.kind == "numeric":
        return pc.cast(data, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float32)
    keys = [category_key(v) for v in data.to_pylist()]
    lookup = _category_lookup(column)
    unknown = len(column.categories)
    return np.array(
        [lookup.get(k, lookup.get(k.lower(), unknown)) if k is not None else unknown for k in keys],
        dtype=np.float32,
    )


def _targets(plan: TablePlan, data: Any) -> torch.Tensor:
    import pyarrow as pa
    import pyarrow.compute as pc

    if data.null_count:
        raise DataUnavailable(
            f"target {plan.target!r} has {data.null_count} missing values; drop those rows"
        )
    if plan.task == "regression":
        values = pc.cast(data, pa.float64()).to_numpy(zero_copy_only=False)
        return torch.from_numpy(values.astype(np.float32)).unsqueeze(1)
    if plan.target_kind == "numeric":
        values = pc.cast(data, pa.float64()).to_numpy(zero_copy_only=False)
        labels = values.astype(np.int64)
        if (labels != values).any() or labels.min() < 0 or labels.max() >= len(plan.classes):
            raise DataUnavailable(
                f"target {plan.target!r}: numeric classes must be the integers 0 to "
                f"{len(plan.classes) - 1}; upload the labels as text to use other values"
            )
    else:
        lookup = {name: i for i, name in enumerate(plan.classes)}
        labels = np.array([lookup[category_key(v)] for v in data.to_pylist()], dtype=np.int64)
    y = torch.from_numpy(labels)
    return y.float().unsqueeze(1) if plan.task == "binary" else y


@dataclass(frozen=True)
class NumericStats:
    """Per numeric feature: the training split's mean (also the imputed value) and std."""

    mean: torch.Tensor
    std: torch.Tensor


def fit_numeric(x: torch.Tensor, plan: TablePlan) -> NumericStats:
    """Mean and std of each numeric feature over ``x`` (the training split), NaN ignored."""
    index = [j for j, c in enumerate(plan.features) if c.kind == "numeric"]
    values = x[:, index].double()
    present = ~torch.isnan(values)
    count = present.sum(0).clamp(min=1)
    mean = torch.where(present, values, 0).sum(0) / count
    variance = (torch.where(present, values - mean, 0) ** 2).sum(0) / count
    std = variance.sqrt()
    std = torch.where(std > 1e-12, std, torch.ones_like(std))  # a constant column stays 0
    return NumericStats(mean.float(), std.float())


def fit_target(y: torch.Tensor) -> tuple[float, float]:
    """A regression target's mean and std (the network predicts in those units)."""
    mean, std = float(y.double().mean()), float(y.double().std()) if len(y) > 1 else 1.0
    return mean, std if std > 1e-12 else 1.0
