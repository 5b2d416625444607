"""The model catalogue: one ``ModelSpec`` per model module, collected in ``REGISTRY``."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Literal, get_args

import torch
from pydantic import BaseModel
from torch import nn

from torchkiln.models.common.options import TrainOptions

BatchAugment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
Task = Literal["regression", "binary", "multiclass"]
# What ``postprocess`` returns: a model, or ``A | B`` where it depends on the job's options.
Answer = type[BaseModel] | UnionType


@dataclass(frozen=True)
class Split:
    """Inputs and targets of one split, as tensors ready to batch by index."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class TrainingData:
    """What ``load_data`` returns: a training split and, where the model has them, val/test."""

    train: Split
    val: Split | None = None
    test: Split | None = None


@dataclass(frozen=True)
class DataRoot:
    """Where data sets live (torchvision layout) and whether they may be downloaded there.

    ``datasets`` is where uploaded datasets live: ``<datasets>/<id>/`` with ``schema.json``
    and ``table.parquet`` or ``images/``.
    """

    path: Path
    allow_download: bool = False
    datasets: Path | None = None
    # Decoded tensors of an uploaded image dataset over this fail the job at once.
    max_decoded_bytes: int = 4 * 2**30


class DataUnavailable(Exception):
    """The data set's files are missing and cannot be fetched; the message names them."""


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor of a model's tensor interface; -1 in ``shape`` is any size (the batch).

    ``datatype`` is an Open Inference Protocol name: FP32, INT64, UINT8, BYTES, ...
    """

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class TensorSignature:
    """A model's interface in tensors, for tensor protocols and exported graphs.

    ``to_batch`` turns the named input tensors (already checked against ``inputs``' shapes)
    into the network's input batch; ``from_outputs`` turns the network's output batch into the
    numeric ``outputs`` (traceable: exported graphs include it), and ``strings`` (optional)
    derives the BYTES ones from those. ``classes`` names a classifier's labels in order.
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    to_batch: Callable[[dict[str, torch.Tensor]], torch.Tensor]
    from_outputs: Callable[[torch.Tensor], dict[str, torch.Tensor]]
    strings: Callable[[dict[str, torch.Tensor]], dict[str, list[str]]] | None = None
    classes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Batching:
    """How the service coalesces concurrent predictions of one version into one forward pass.

    A batch holds at most ``max_size`` samples; a queued prediction waits at most
    ``max_wait_s`` for others still being decoded, and a lone one never waits.
    """

    max_size: int = 32
    max_wait_s: float = 0.002


@dataclass(frozen=True)
class ModelSpec:
    """Everything the service and workers need to know about one model.

    ``build(options)`` returns the network; ``load_data(options, data_root)`` the tensors;
    ``preprocess(inputs)`` turns a validated ``inputs`` body into a batch tensor and
    ``postprocess(outputs)`` turns the network's output batch into a JSON-able dict, whose
    shape ``answer`` declares (a pydantic model, or a union of them): the API documents it,
    and never validates a prediction against it.
    ``decode_upload(bytes)`` (image models) turns one uploaded file into a one-sample batch.
    ``augment(x, generator)`` (optional) transforms a training batch on its device.
    ``report(module)`` (optional) adds per-epoch metrics such as the learned weights.

    Hooks for models whose data and shape come from their options (``sequential``):
    ``specialise(options)`` returns the spec one job runs and serves with (its task, data,
    inputs and outputs), ``describe(options)`` a summary of the network without training it
    (``POST /models/{name}/summary``), and ``presets`` ready-made params to start from.
    ``tensors`` (optional) describes the model in named tensors (Open Inference Protocol).
    ``batching`` (optional): serve concurrent predictions in shared forward passes; for networks
    whose forward pass costs about the same for one sample as for several.
    ``metrics(outputs, targets)`` (optional) adds figures of a whole split to the epoch's
    record, prefixed with the split's name (``val_rmse``).
    ``table_upload(data, content_type)`` (optional, table models) turns an uploaded table file
    into a validated ``inputs`` body; the prediction route then scores CSV files too.
    """

    name: str
    summary: str
    task: Task
    options: type[TrainOptions]
    inputs: type[BaseModel]
    build: Callable[[Any], nn.Module]
    load_data: Callable[[Any, DataRoot], TrainingData]
    preprocess: Callable[[Any], torch.Tensor]
    postprocess: Callable[[torch.Tensor], dict[str, Any]]
    answer: Answer
    decode_upload: Callable[[bytes], torch.Tensor] | None = None
    augment: (
        Callable[[Any], Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None] | None
    ) = None
    report: Callable[[nn.Module], dict[str, float]] | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    specialise: Callable[[Any], ModelSpec] | None = None
    describe: Callable[[Any], BaseModel] | None = None
    presets: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    tensors: TensorSignature | None = None
    batching: Batching | None = None
    metrics: Callable[[torch.Tensor, torch.Tensor], dict[str, float]] | None = None
    table_upload: Callable[[bytes, str], BaseModel] | None = None

    def parse_options(
        self,
        params: dict[str, Any],
        *,
        strict: bool = False,
        context: dict[str, Any] | None = None,
    ) -> TrainOptions:
        """Validate job params against this model's option schema (raises ValidationError).

        ``strict`` for a client's params: ``true`` is not the number 1, nor ``"3"`` the
        integer 3, as the published schema says; stored (already validated) params parse lax.
        ``context`` (at submit time only) carries ``dataset_lookup``: id → the uploaded
        dataset's ``{"id", "name", "sha256", "kind", "schema"}``, or LookupError.
        """
        return self.options.model_validate(params, strict=strict, context=context)

    def example_options(self) -> TrainOptions:
        """The options' defaults, or their first schema example where some option is required
        (a dataset id): what the catalogue shows and the registry-wide checks build."""
        examples = self.options.model_json_schema().get("examples")
        return self.options.model_validate(examples[0]) if examples else self.options()

    def answer_models(self) -> tuple[type[BaseModel], ...]:
        """The shapes a prediction of this model can take: ``answer``, or its union's members."""
        return get_args(self.answer) or (self.answer,)  # type: ignore[return-value]

    def for_options(self, options: TrainOptions) -> ModelSpec:
        """The spec a job with these options trains and serves with (most models: this one)."""
        return self if self.specialise is None else self.specialise(options)


# The only global mutable state in torchkiln: filled once, when the package is imported.
REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a spec to the catalogue; model modules call this at import time."""
    if spec.name in REGISTRY:
        raise ValueError(f"model {spec.name!r} registered twice")
    REGISTRY[spec.name] = spec
    return spec


def load_catalogue() -> dict[str, ModelSpec]:
    """Import every model module at the top of ``torchkiln.models`` so each registers its spec.

    Helpers live in the ``common`` sub-package, so every top-level module is a model.
    """
    package = importlib.import_module("torchkiln.models")
    for info in pkgutil.iter_modules(package.__path__):
        if not info.ispkg:
            importlib.import_module(f"torchkiln.models.{info.name}")
    return REGISTRY
