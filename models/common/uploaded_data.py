"""A layer list on an uploaded dataset: what it reads, what it must output, how it serves.

Images and tables are read as ``image_classifier`` and ``tabular`` read them, through a view
of the sequential options as theirs. An image network gets the training split's channel
standardisation in front of the user's layers; a table network gets the fitted table encoder
(imputation, standardisation, one-hot or embedded categories), so it serves raw rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from pydantic import RootModel
from torch import nn

from torchkiln.models import image_classifier, tabular
from torchkiln.models.common import table_answers
from torchkiln.models.common.image_folder import channels_of, class_names
from torchkiln.models.common.image_inputs import ImageBatch
from torchkiln.models.common.images import ImageLimits, ImageRejected
from torchkiln.models.common.network import Plan, build_network
from torchkiln.models.common.registry import ModelSpec, Task
from torchkiln.models.common.tabular_data import TablePlan, plan_table
from torchkiln.models.common.tabular_network import EncodedTable, encoded_width, outputs_of
from torchkiln.models.common.tensors import image_tensors
from torchkiln.models.common.uploaded import recorded_schema

DEFAULT_IMAGE_SIZE = 32
# Options only a table dataset takes, and the one only an image dataset takes.
TABLE_KEYS = ("target", "features", "task")
IMAGE_KEYS = ("image_size",)
# The optimizer settings the uploaded-data models default to, unless the job gives its own.
DEFAULTS = {
    "images": {
        key: image_classifier.ImageClassifierOptions.model_fields[key].default
        for key in ("optimizer", "lr", "epochs")
    },
    "table": {
        key: tabular.TabularOptions.model_fields[key].default
        for key in ("optimizer", "lr", "epochs", "val_fraction")
    },
}


class UploadedParams(Protocol):
    """The sequential options this module reads."""

    data: Any
    lineage: dict[str, Any] | None
    image_size: int | None
    target: str | None
    features: list[str] | None
    task: Task | None
    augment: bool
    val_fraction: float


@dataclass(frozen=True)
class Needs:
    """What a network on the dataset reads (one sample's shape) and must output."""

    input_shape: tuple[int, ...]
    outputs: int
    what: str
    task: Task


def schema_of(options: UploadedParams) -> dict[str, Any]:
    schema = recorded_schema(options.lineage)
    if schema is None:
        raise ValueError("dataset lineage missing: submit the job through POST /jobs")
    return schema


def table_plan(options: UploadedParams) -> TablePlan:
    """The columns, target and task of a table job (ValueError naming what to fix)."""
    schema = schema_of(options)
    if options.target is None:
        usable = [c["name"] for c in schema.get("columns", []) if c["type"] != "text"]
        raise ValueError(f"a table dataset needs target: one of {usable}")
    return plan_table(schema, options.target, options.features, options.task)


def needs(options: UploadedParams) -> Needs:
    """The input shape and outputs of a network on the options' uploaded dataset."""
    schema = schema_of(options)
    if schema["kind"] == "images":
        classes = class_names(schema)
        if len(classes) < 2:
            raise ValueError("data: an image classifier needs at least two classes")
        side = options.image_size or DEFAULT_IMAGE_SIZE
        scores = f"{len(classes)} class scores"
        return Needs((channels_of(schema), side, side), len(classes), scores, "multiclass")
    plan = table_plan(options)
    what = {"binary": "1 logit", "regression": "1 value"}.get(
        plan.task, f"{len(plan.classes)} class scores"
    )
    return Needs((encoded_width(plan),), outputs_of(plan), what, plan.task)


def image_view(options: UploadedParams) -> image_classifier.ImageClassifierOptions:
    """The options as image_classifier's, for its reading and augmentation."""
    return image_classifier.ImageClassifierOptions.model_validate(
        {
            "dataset": options.data,
            "image_size": options.image_size or DEFAULT_IMAGE_SIZE,
            "augment": options.augment,
            "val_fraction": options.val_fraction,
            "lineage": options.lineage,
        }
    )


def table_view(options: UploadedParams) -> tabular.TabularOptions:
    """The options as tabular's, for its reading of the table."""
    return tabular.TabularOptions.model_validate(
        {
            "dataset": options.data,
            "target": options.target,
            "features": options.features,
            "task": options.task,
            "val_fraction": options.val_fraction,
            "lineage": options.lineage,
        }
    )


def _body(inputs: Any) -> Any:
    return inputs.root if isinstance(inputs, RootModel) else inputs


def _no_uploads(_: bytes, limits: ImageLimits | None = None) -> torch.Tensor:
    raise ImageRejected('this network reads table rows, not images: send {"rows": [...]}')


def image_spec(base: ModelSpec, options: UploadedParams, plan: Plan) -> ModelSpec:
    """The spec of a job on an uploaded image dataset; ``plan``: its checked layer list."""
    view = image_view(options)
    schema = view.schema()
    channels, side, classes = channels_of(schema), view.image_size, class_names(schema)
    fitted = image_classifier.Fitted()
    pixels = image_classifier.pixels_batch(channels, side)

    def build(_: Any) -> nn.Module:
        return nn.Sequential(image_classifier.standardiser(channels, fitted), build_network(plan))

    def preprocess(inputs: Any) -> torch.Tensor:
        body = _body(inputs)
        if not isinstance(body, ImageBatch):
            raise ImageRejected('this network reads images: send {"image": ...} or image files')
        return pixels(body)

    return dataclasses.replace(
        base,
        task="multiclass",
        build=build,
        load_data=lambda _, root: image_classifier.load_images(view, root, fitted),
        preprocess=preprocess,
        postprocess=image_classifier.class_postprocess(classes),
        answer=image_classifier.ImageClassAnswer,
        decode_upload=image_classifier.upload_decoder(channels, side),
        augment=lambda _: image_classifier.augmenter(view),
        tensors=image_tensors((channels, side, side), lambda p: p, classes),
        specialise=None,
    )


def table_spec(base: ModelSpec, options: UploadedParams, plan: Plan) -> ModelSpec:
    """The spec of a job on an uploaded table; ``plan``: its layer list on the encoded width."""
    view = table_view(options)
    columns = view.plan()
    fitted = tabular.Fitted()
    rows = tabular.preprocess_rows(columns)
    is_regression = columns.task == "regression"

    def build(_: Any) -> nn.Module:
        network = EncodedTable(columns, lambda _: build_network(plan))
        if fitted.numeric is not None:
            network.fit(fitted.numeric, fitted.target)
        return network

    def preprocess(inputs: Any) -> torch.Tensor:
        body = _body(inputs)
        if not isinstance(body, tabular.TabularInputs):
            raise tabular.RowsRejected('this network reads table rows: send {"rows": [...]}')
        return rows(body)

    return dataclasses.replace(
        base,
        task=columns.task,
        build=build,
        load_data=lambda _, root: tabular.load_table(view, root, fitted),
        preprocess=preprocess,
        postprocess=table_answers.value_postprocess
        if is_regression
        else table_answers.class_postprocess(columns.classes, columns.task),
        answer=table_answers.TabularValueAnswer
        if is_regression
        else table_answers.TabularClassAnswer,
        decode_upload=_no_uploads,
        augment=None,
        tensors=table_answers.table_tensors(columns),
        metrics=table_answers.regression_metrics if is_regression else None,
        specialise=None,
    )


def uploaded_spec(base: ModelSpec, options: UploadedParams, plan: Plan) -> ModelSpec:
    if schema_of(options)["kind"] == "images":
        return image_spec(base, options, plan)
    return table_spec(base, options, plan)
