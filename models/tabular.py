"""An MLP on an uploaded table: pick a target column, the task follows from its type.

``{"dataset": 3, "target": "Outcome", "hidden": [64, 32], "activation": "relu"}``. Features
are every usable column but the target unless listed; numeric ones are imputed with the
training mean and standardised, categorical ones one-hot or embedded, all inside the network
(``tabular_network``), so predictions take raw rows: ``{"rows": [{"Glucose": 148, ...}]}``.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from torchkiln.models.common.datasets import split_off_validation, split_stratified
from torchkiln.models.common.images import ImageRejected
from torchkiln.models.common.options import OptimizerName
from torchkiln.models.common.registry import (
    DataRoot,
    DataUnavailable,
    ModelSpec,
    Split,
    Task,
    TrainingData,
    register,
)
from torchkiln.models.common.schedules import EarlyStopping
from torchkiln.models.common.table_answers import (
    TabularClassAnswer,
    TabularValueAnswer,
    class_postprocess,
    regression_metrics,
    table_tensors,
    value_postprocess,
)
from torchkiln.models.common.tabular_data import (
    NumericStats,
    TablePlan,
    encode_rows,
    encode_table,
    fit_numeric,
    fit_target,
    plan_table,
)
from torchkiln.models.common.tabular_network import TabularNetwork
from torchkiln.models.common.uploaded import UploadedOptions, dataset_dir
from torchkiln.models.common.watched_metric import Watch

logger = logging.getLogger(__name__)

MAX_ROWS = 10_000
MAX_LAYERS = 16
Activation = Literal["relu", "sigmoid", "tanh", "gelu"]
LossName = Literal["bce", "cross_entropy", "mse", "l1", "smooth_l1"]
DEFAULT_LOSS = {"binary": "bce", "multiclass": "cross_entropy", "regression": "mse"}
LOSSES_BY_TASK = {"binary": {"bce"}, "multiclass": {"cross_entropy"}}

# The catalogue's example job: a table of the diabetes lesson's shape (schema only).
EXAMPLE_SCHEMA: dict[str, Any] = {
    "kind": "table",
    "rows": 768,
    "columns": [
        {
            "name": "Glucose",
            "type": "numeric",
            "missing": 0,
            "distinct": 136,
            "examples": [148, 85, 183],
        },
        {
            "name": "BMI",
            "type": "numeric",
            "missing": 11,
            "distinct": 248,
            "examples": [33.6, 26.6, 23.3],
        },
        {
            "name": "Smoker",
            "type": "boolean",
            "missing": 0,
            "distinct": 2,
            "examples": [True, False],
            "categories": ["false", "true"],
        },
        {
            "name": "Outcome",
            "type": "categorical",
            "missing": 0,
            "distinct": 2,
            "examples": ["tested_positive", "tested_negative"],
            "categories": ["tested_negative", "tested_positive"],
        },
    ],
}
EXAMPLE_PARAMS: dict[str, Any] = {
    "dataset": 1,
    "target": "Outcome",
    "lineage": {
        "datasets": [
            {
                "id": 1,
                "name": "diabetes.csv",
                "sha256": "0" * 64,
                "kind": "table",
                "role": "train",
                "schema": EXAMPLE_SCHEMA,
            }
        ]
    },
}
EXAMPLE_ROW: dict[str, Any] = {"Glucose": 148, "BMI": 33.6, "Smoker": False}


class TabularOptions(UploadedOptions):
    """An MLP on an uploaded table's columns; the task is inferred from the target's type."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_PARAMS]})
    SEED_RECIPE = {
        "hidden": [6, 4],
        "activation": "sigmoid",
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "epochs": 100,
        "batch_size": 32,
        # The lesson trains all its epochs and keeps the last weights.
        "early_stopping": None,
        "watch": None,
    }

    target: str = Field(min_length=1, max_length=1024, description="The column to predict.")
    features: list[str] | None = Field(
        None,
        max_length=10_000,
        description="Columns to read; null: every usable one but the target.",
    )
    task: Task | None = Field(
        None, description="binary, multiclass or regression; null: inferred from the target."
    )
    hidden: list[int] = Field(
        [64, 32],
        max_length=MAX_LAYERS,
        description="Widths of the hidden layers, first first.",
    )
    activation: Activation = Field("relu", description="Activation after each hidden layer.")
    loss: LossName | None = Field(None, description="Null: bce, cross_entropy or mse by task.")
    optimizer: OptimizerName = Field("adam", description="torch.optim algorithm.")
    lr: float = Field(0.003, gt=0, le=10)
    epochs: int = Field(50, ge=1, le=100_000)
    val_fraction: float = Field(
        0.2, ge=0, le=0.5, description="Share of the rows held out for validation (stratified)."
    )
    # Ludwig's defaults for tables: a few hundred rows overfit an MLP within epochs, so stop
    # when val_loss stalls and serve the best epoch's weights, not the last ones.
    early_stopping: EarlyStopping | None = Field(
        EarlyStopping(metric="val_loss", patience=5),
        description="Stop when a metric stalls; default: val_loss, 5 epochs "
        "(null: train every epoch; dropped when val_fraction is 0).",
    )
    watch: Watch | None = Field(
        Watch(metric="val_loss"),
        description="Keep the best epoch by this metric, and serve it; default: val_loss "
        "(null: serve the last epoch; dropped when val_fraction is 0).",
    )

    @model_validator(mode="after")
    def _check_columns(self) -> TabularOptions:
        if any(not 1 <= width <= 4096 for width in self.hidden):
            raise ValueError("hidden: each layer's width must be between 1 and 4096")
        if self.val_fraction == 0:
            # Without a validation split there is no val_loss: the defaults step aside.
            for name in ("early_stopping", "watch"):
                if name not in self.model_fields_set:
                    setattr(self, name, None)
        plan = self.plan()
        self.task = plan.task
        if self.loss is None:
            self.loss = DEFAULT_LOSS[plan.task]
        elif self.loss not in LOSSES_BY_TASK.get(plan.task, {"mse", "l1", "smooth_l1"}):
            raise ValueError(f"loss {self.loss!r} does not fit the {plan.task} task")
        test_schema = self.dataset_schema("test")
        if test_schema is not None:
            names = {c["name"] for c in test_schema.get("columns", [])}
            lacking = [c.name for c in plan.features if c.name not in names]
            lacking += [plan.target] if plan.target not in names else []
            if lacking:
                raise ValueError(
                    f"test_dataset: lacks the column(s) {', '.join(map(repr, lacking))}"
                )
        return self

    def plan(self) -> TablePlan:
        schema = self.dataset_schema("train")
        if schema is None:
            raise ValueError("dataset lineage missing: submit the job through POST /jobs")
        return plan_table(schema, self.target, self.features, self.task)


class TabularInputs(BaseModel):
    """Prediction body: {"rows": [{"column": value, ...}, ...]}, raw values as uploaded."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"rows": [EXAMPLE_ROW]}]}
    )

    rows: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ROWS)


class RowsRejected(ImageRejected):
    """Rows that cannot become model input (a missing feature, a non-number): a 422."""


@dataclass
class Fitted:
    """The training split's statistics, from ``load_data`` to ``build`` of the same job."""

    numeric: NumericStats | None = None
    target: tuple[float, float] | None = None


def _read(path: Path, columns: list[str]) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns)
    except (OSError, ValueError) as error:  # pyarrow's own error names the problem
        raise DataUnavailable(f"cannot read {path}: {error}") from error


@lru_cache(maxsize=4)
def _encoded(
    path: str, stamp: tuple[int, int], plan: TablePlan
) -> tuple[torch.Tensor, torch.Tensor]:
    columns = [*(c.name for c in plan.features), plan.target]
    return encode_table(plan, _read(Path(path), list(dict.fromkeys(columns))))


def read_split(data_root: DataRoot, dataset_id: int, plan: TablePlan) -> Split:
    """The table's rows encoded for ``plan``, cached per file, its stamp and the plan."""
    path = dataset_dir(data_root, dataset_id) / "table.parquet"
    if not path.is_file():
        raise DataUnavailable(f"dataset {dataset_id} has no table.parquet in {path.parent}")
    stat = path.stat()
    x, y = _encoded(str(path.resolve()), (stat.st_mtime_ns, stat.st_size), plan)
    return Split(x, y)


def load_table(options: TabularOptions, data_root: DataRoot, fitted: Fitted) -> TrainingData:
    plan = options.plan()
    schema = options.dataset_schema("train") or {}
    text = [c["name"] for c in schema.get("columns", []) if c["type"] == "text"]
    if options.features is None and text:
        logger.warning("text columns left out (cannot be used as features): %s", ", ".join(text))
    rows = read_split(data_root, options.dataset, plan)
    if plan.task == "regression":
        train, val = split_off_validation(rows.x, rows.y, options.val_fraction)
    else:
        labels = rows.y.view(-1).long()
        train, val = split_stratified(rows.x, labels, options.val_fraction, rows.y)
    test = read_split(data_root, options.test_dataset, plan) if options.test_dataset else None
    fitted.numeric = fit_numeric(train.x, plan)
    fitted.target = fit_target(train.y) if plan.task == "regression" else None
    return TrainingData(train=train, val=val, test=test)


def build_network(options: TabularOptions, fitted: Fitted | None = None) -> nn.Module:
    network = TabularNetwork(options.plan(), options.hidden, options.activation, options.dropout)
    if fitted is not None and fitted.numeric is not None:
        network.fit(fitted.numeric, fitted.target)
    return network


def preprocess_rows(plan: TablePlan) -> Any:
    def preprocess(inputs: TabularInputs) -> torch.Tensor:
        try:
            return encode_rows(plan, inputs.rows)
        except ValueError as error:
            raise RowsRejected(str(error)) from None

    return preprocess


def read_csv_upload(data: bytes, content_type: str) -> TabularInputs:
    """An uploaded CSV (or TSV) file's rows as a prediction body."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    sample = data[:65_536].decode("utf-8", errors="replace")
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    try:
        table = pacsv.read_csv(
            io.BytesIO(data), parse_options=pacsv.ParseOptions(delimiter=delimiter)
        )
    except (pa.ArrowInvalid, ValueError) as error:
        raise RowsRejected(f"cannot read the uploaded CSV: {error}") from None
    rows = table.to_pylist()
    if not rows:
        raise RowsRejected("the uploaded CSV has a header but no rows to score")
    if len(rows) > MAX_ROWS:
        raise RowsRejected(f"the uploaded CSV has {len(rows):,} rows; send at most {MAX_ROWS:,}")
    return TabularInputs(rows=rows)


def specialise(options: TabularOptions) -> ModelSpec:
    """The spec of one job: its table's columns, task, classes and the fitted statistics."""
    plan = options.plan()
    fitted = Fitted()
    is_regression = plan.task == "regression"
    return dataclasses.replace(
        SPEC,
        task=plan.task,
        build=lambda opts: build_network(opts, fitted),
        load_data=lambda opts, root: load_table(opts, root, fitted),
        preprocess=preprocess_rows(plan),
        postprocess=value_postprocess
        if is_regression
        else class_postprocess(plan.classes, plan.task),
        answer=TabularValueAnswer if is_regression else TabularClassAnswer,
        tensors=table_tensors(plan),
        metrics=regression_metrics if is_regression else None,
        specialise=None,
    )


EXAMPLE_PLAN = plan_table(EXAMPLE_SCHEMA, "Outcome", None, None)

SPEC = register(
    ModelSpec(
        name="tabular",
        summary="An MLP on an uploaded table: binary, multiclass or regression on its columns.",
        task="binary",
        options=TabularOptions,
        inputs=TabularInputs,
        build=build_network,
        load_data=lambda options, root: load_table(options, root, Fitted()),
        # Each job reads its own columns (specialise); these serve the example's.
        preprocess=preprocess_rows(EXAMPLE_PLAN),
        postprocess=class_postprocess(EXAMPLE_PLAN.classes, EXAMPLE_PLAN.task),
        answer=TabularClassAnswer | TabularValueAnswer,
        tensors=table_tensors(EXAMPLE_PLAN),
        specialise=specialise,
        table_upload=read_csv_upload,
    )
)
