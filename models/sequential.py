"""Networks as data: an ``nn.Sequential`` built from a validated layer list, on a data set.

``{"data": "cifar10", "layers": [{"type": "conv2d", "out_channels": 32, ...}, ...]}``. A
built-in data set brings its task, loss, option defaults, augmentation, prediction inputs and
outputs from the built-in model that reads it; an uploaded dataset id (``"data": 4``) brings
them from image_classifier or tabular (``uploaded_data``). The list is checked on the meta
device when the job is submitted (shapes, output size, limits), so a list that cannot work
is a 422 then, not a failed job later.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from torch import nn

from torchkiln.models import cifar10_cnn, diabetes, image_classifier, mnist_mlp, tabular
from torchkiln.models.common import table_answers, uploaded_data
from torchkiln.models.common.images import ImageLimits, ImageRejected
from torchkiln.models.common.layers import Layer
from torchkiln.models.common.network import Limits, Plan, build_network, plan_network
from torchkiln.models.common.options import TrainOptions
from torchkiln.models.common.presets import PRESETS
from torchkiln.models.common.registry import DataRoot, ModelSpec, Task, TrainingData, register
from torchkiln.models.common.summary import NetworkSummary, summarise
from torchkiln.models.common.uploaded import with_lineage

# Refuse absurd requests at submit time: nested layers count towards MAX_LAYERS.
MAX_LAYERS = 64
MAX_PARAMETERS = 50_000_000
MAX_FLOPS_PER_SAMPLE = 5_000_000_000
MAX_ACTIVATIONS_PER_SAMPLE = 16_000_000
LIMITS = Limits(MAX_LAYERS, MAX_PARAMETERS, MAX_FLOPS_PER_SAMPLE, MAX_ACTIVATIONS_PER_SAMPLE)
# "layers[3].out_features", "layers[2].layers[0].p": one option of one (nested) layer.
LAYER_OPTION = re.compile(r"layers(\[\d+\]\.layers)*\[\d+\]\.[a-z_]+")
# Options the data set's built-in model sets its own defaults for; a job may override each.
DATA_DEFAULTS = ("epochs", "lr", "momentum", "batch_size", "val_fraction")
_SGD_LIKE = {"sgd", "rmsprop"}
LossName = Literal["cross_entropy", "bce", "mse", "l1", "smooth_l1"]
DEFAULT_LOSS = {"multiclass": "cross_entropy", "binary": "bce", "regression": "mse"}
LOSSES_BY_TASK = {
    "multiclass": {"cross_entropy"},
    "binary": {"bce"},
    "regression": {"mse", "l1", "smooth_l1"},
}


@dataclass(frozen=True)
class BuiltinData:
    """A built-in data set: the model whose data, inputs and outputs a network reuses."""

    source: ModelSpec
    input_shape: tuple[int, ...]
    outputs: int
    what: str


DATA: dict[str, BuiltinData] = {
    "mnist": BuiltinData(mnist_mlp.SPEC, (1, 28, 28), 10, "10 class scores"),
    "cifar10": BuiltinData(cifar10_cnn.SPEC, (3, 32, 32), 10, "10 class scores"),
    "diabetes": BuiltinData(diabetes.SPEC, (diabetes.N_FEATURES,), 1, "1 logit"),
}
DataName = Literal["mnist", "cifar10", "diabetes"]
KINDS = ("images", "table")
# What a network on an uploaded dataset needs to know its input shape and outputs.
UPLOADED_FIELDS = ("data", "lineage", "image_size", "target", "features", "task")


# The network a job without ``layers`` gets: its data set's built-in one.
DEFAULT_PRESETS = {"mnist": "mnist_mlp", "cifar10": "cifar10_cnn", "diabetes": "diabetes_mlp"}


def _default_layers(data: str = "mnist") -> list[dict[str, Any]]:
    return next(p for p in PRESETS if p["name"] == DEFAULT_PRESETS[data])["params"]["layers"]


def plan_for(data: str, layers: list[Any]) -> Plan:
    """The checked plan of ``layers`` on built-in ``data`` (raises LayerError, a ValueError)."""
    entry = DATA[data]
    return _checked(layers, entry.input_shape, entry.outputs, f"{data} needs {entry.what}")


def _checked(layers: list[Any], shape: tuple[int, ...], outputs: int, needs: str) -> Plan:
    plan = plan_network(layers, shape, LIMITS)
    if plan.output_shape != (outputs,):
        raise ValueError(
            f"layers: the network outputs {'×'.join(map(str, plan.output_shape))} values a "
            f"sample; {needs}: end with "
            f'{{"type": "linear", "out_features": {outputs}}}'
        )
    return plan


def options_plan(options: Any) -> Plan:
    """The checked plan of a job's layer list on its data set, built-in or uploaded."""
    if isinstance(options.data, str):
        return plan_for(options.data, options.layers)
    needs = uploaded_data.needs(options)
    what = f"dataset {options.data} needs {needs.what}"
    return _checked(options.layers, needs.input_shape, needs.outputs, what)


def _is_uploaded(data: Any) -> bool:
    return isinstance(data, int) and not isinstance(data, bool)


def _gather_layer_options(params: dict[str, Any]) -> dict[str, Any]:
    """Move ``layers[i].option`` keys into ``layer_options`` and apply them to the list."""
    given = params.get("layer_options", {})
    if not isinstance(given, dict):
        return params  # the field's own validation names the mistake
    paths = {k: v for k, v in params.items() if isinstance(k, str) and LAYER_OPTION.fullmatch(k)}
    chosen = {**given, **paths}
    if not chosen:
        return params
    layers = copy.deepcopy(params["layers"])
    for path, value in chosen.items():
        if not isinstance(path, str) or not LAYER_OPTION.fullmatch(path):
            raise ValueError(f"layer_options: {path!r} is not a path like layers[1].out_features")
        *indices, last = (int(i) for i in re.findall(r"\[(\d+)\]", path))
        try:
            target = layers
            for index in indices:
                target = _as_dict(target[index])["layers"]
            target[last] = {**_as_dict(target[last]), path.rsplit(".", 1)[1]: value}
        except (IndexError, KeyError, TypeError):
            raise ValueError(f"{path}: the layer list has no such layer") from None
    rest = {k: v for k, v in params.items() if k not in paths}
    return {**rest, "layers": layers, "layer_options": chosen}


def _uploaded_defaults(params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    """Lineage recorded (at submit) and the defaults of the model that reads the dataset."""
    params = with_lineage(
        params, (info.context or {}).get("dataset_lookup"), (("data", "train"),), KINDS
    )
    if "layers" not in params:
        raise ValueError(
            "layers: an uploaded dataset has no default network; send a layer list "
            "(GET /models/sequential/presets has examples)"
        )
    datasets = (params.get("lineage") or {}).get("datasets") or [{}]
    defaults = uploaded_data.DEFAULTS.get(datasets[0].get("schema", {}).get("kind"), {})
    filled = {k: v for k, v in defaults.items() if k not in params}
    optimizer = params.get("optimizer", filled.get("optimizer"))
    if "momentum" not in params and optimizer not in _SGD_LIKE:
        filled["momentum"] = 0.0
    return {**filled, **params}


def _as_dict(layer: Any) -> dict[str, Any]:
    return layer.model_dump(exclude_unset=True) if isinstance(layer, BaseModel) else dict(layer)


class SequentialOptions(TrainOptions):
    """A layer list on a built-in data set; optimizer defaults come from the data's model."""

    data: DataName | Annotated[int, Field(ge=1, le=2**31 - 1)] = Field(
        "mnist",
        description="Built-in data set (mnist, cifar10, diabetes) or an uploaded dataset's id.",
    )
    # Before layers: its check reads them.
    image_size: int | None = Field(
        None, ge=8, le=512, description="Uploaded images: resized to this square (default 32)."
    )
    target: str | None = Field(
        None, min_length=1, max_length=1024, description="Uploaded table: the column to predict."
    )
    features: list[str] | None = Field(
        None, max_length=10_000, description="Uploaded table: columns to read; null: all usable."
    )
    task: Task | None = Field(
        None, description="Uploaded table: binary, multiclass or regression; null: inferred."
    )
    lineage: dict[str, Any] | None = Field(
        None, description="Filled at submit time for an uploaded dataset: its id, name, schema."
    )
    layers: list[Layer] = Field(
        default_factory=_default_layers,
        validate_default=True,
        description="The network, first layer first; input sizes are inferred.",
    )
    loss: LossName | None = Field(None, description="Null: the data set's (cross_entropy, bce).")
    epochs: int = Field(10, ge=1, le=100_000)
    lr: float = Field(0.01, gt=0, le=10)
    momentum: float = Field(0.5, ge=0, lt=1)
    batch_size: int | None = Field(64, ge=1, le=65_536, description="Mini-batch size.")
    val_fraction: float = Field(
        0.1, ge=0, le=0.5, description="Share of the training file held out for validation."
    )
    augment: bool = Field(False, description="The data's random shifts/crops (images only).")
    layer_options: dict[str, Any] = Field(
        default_factory=dict,
        description='Set one layer\'s option by path, e.g. "layers[1].out_features": 256; '
        "given as top-level params, so a sweep's space can search them.",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_data_defaults(cls, params: Any, info: ValidationInfo) -> Any:
        # A copy of a built-in network should train as the built-in does by default.
        data = params.get("data", "mnist") if isinstance(params, dict) else None
        if _is_uploaded(data):
            return _gather_layer_options(_uploaded_defaults(params, info))
        # Anything but a known name (a typo, an object) is left to the field's validation.
        if not isinstance(data, str) or data not in DATA:
            return params
        # "seed": the seed recipe of the data's own model, for the options not given.
        seed = params.get("preset") == "seed"
        defaults = DATA[data].source.options(preset="seed" if seed else "default")
        filled = {k: getattr(defaults, k) for k in DATA_DEFAULTS if k not in params}
        if "layers" not in params:
            filled["layers"] = _default_layers(data)
        if "momentum" not in params and params.get("optimizer", "sgd") not in _SGD_LIKE:
            filled["momentum"] = 0.0  # as DatasetOptions: switching optimizer alone is fine
        return _gather_layer_options({**filled, **params})

    @model_serializer(mode="wrap")
    def _dump_layer_options(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Back at the top level, where a sweep's leaderboard looks its searched keys up.
        dumped = handler(self)
        chosen = dumped.pop("layer_options", {})
        # The uploaded-data options, left out where unset: built-in jobs' params stay as they were.
        for key in (*uploaded_data.TABLE_KEYS, *uploaded_data.IMAGE_KEYS, "lineage"):
            if dumped.get(key) is None:
                dumped.pop(key, None)
        return {**dumped, **chosen}

    @field_validator("layers")
    @classmethod
    def _check_layers(cls, layers: list[Any], info: ValidationInfo) -> list[Any]:
        data = info.data.get("data")
        if isinstance(data, str):
            plan_for(data, layers)
        elif _is_uploaded(data) and set(UPLOADED_FIELDS) <= set(info.data):
            given = SimpleNamespace(**{k: info.data[k] for k in UPLOADED_FIELDS})
            try:
                needs = uploaded_data.needs(given)
            except ValueError:
                return layers  # the options' own check names what is wrong
            _checked(layers, needs.input_shape, needs.outputs, f"dataset {data} needs {needs.what}")
        return layers

    @model_validator(mode="after")
    def _check_loss(self) -> SequentialOptions:
        task = self._check_uploaded()
        if self.loss is None:
            self.loss = DEFAULT_LOSS[task]
        elif self.loss not in LOSSES_BY_TASK[task]:
            allowed = ", ".join(sorted(LOSSES_BY_TASK[task]))
            raise ValueError(f"loss {self.loss!r} does not fit {self.data} ({task}): use {allowed}")
        if self.augment and not self._reads_images():
            raise ValueError(f"augment applies to image data, not {self.data}")
        return self

    def _reads_images(self) -> bool:
        if isinstance(self.data, str):
            return DATA[self.data].source.augment is not None
        return uploaded_data.schema_of(self)["kind"] == "images"

    def _check_uploaded(self) -> Task:
        """The task; for an uploaded dataset, its options and layer list checked."""
        kind = "builtin" if isinstance(self.data, str) else uploaded_data.schema_of(self)["kind"]
        misplaced = {
            "builtin": (*uploaded_data.TABLE_KEYS, *uploaded_data.IMAGE_KEYS),
            "images": uploaded_data.TABLE_KEYS,
            "table": uploaded_data.IMAGE_KEYS,
        }[kind]
        for key in misplaced:
            if getattr(self, key) is not None:
                where = "uploaded tables" if key in uploaded_data.TABLE_KEYS else "uploaded images"
                raise ValueError(f"{key} applies to {where}, not to data {self.data!r}")
        if isinstance(self.data, str):
            if self.lineage is not None:  # else a built-in job could hold a dataset it never read
                raise ValueError(f"lineage is recorded for uploaded datasets, not {self.data!r}")
            return DATA[self.data].source.task
        if kind == "images" and self.image_size is None:
            self.image_size = uploaded_data.DEFAULT_IMAGE_SIZE
        needs = uploaded_data.needs(self)  # the layer list itself: checked as a field
        if kind == "table":
            self.task = needs.task
        return needs.task


class SequentialInputs(RootModel):
    """Prediction body: the body of the data set's built-in model (image(s) or features); on
    an uploaded dataset, image pixels or table rows ({"rows": [...]})."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"image": mnist_mlp.MnistInputs.EXAMPLE},
                {"image": cifar10_cnn.Cifar10Inputs.EXAMPLE},
                {"features": [diabetes.EXAMPLE_ROW]},
                {"rows": [tabular.EXAMPLE_ROW]},
            ]
        }
    )

    # Ties go to the first: a 28x28 body stays MnistInputs, a 32x32x3 one Cifar10Inputs.
    root: (
        mnist_mlp.MnistInputs
        | cifar10_cnn.Cifar10Inputs
        | diabetes.DiabetesInputs
        | image_classifier.PixelInputs
        | tabular.TabularInputs
    )


def build(options: SequentialOptions) -> nn.Module:
    if _is_uploaded(options.data):
        return specialise(options).build(options)  # before any fit: statistics 0 and 1
    return build_network(plan_for(options.data, options.layers))


def describe(options: SequentialOptions) -> NetworkSummary:
    """The user's layers; an uploaded dataset's standardisation or encoder comes first."""
    return summarise(options_plan(options))


def _unwrap(source: ModelSpec, inputs: Any) -> Any:
    body = inputs.root if isinstance(inputs, RootModel) else inputs
    if not isinstance(body, source.inputs):
        raise ImageRejected(
            f"this network reads the {source.name} model's inputs: send its body "
            f"({source.inputs.__doc__ or source.inputs.__name__})"
        )
    return body


# The base spec's preprocess, decode_upload and augment serve callers that did not ask for a
# job's own spec (``for_options``): they pick by the body's shape or the options' data.
def _preprocess_any(inputs: SequentialInputs) -> torch.Tensor:
    body = inputs.root
    source = next((e.source for e in DATA.values() if isinstance(body, e.source.inputs)), None)
    if source is None:
        raise ImageRejected("this body is read by a network on an uploaded dataset: pick a job")
    return source.preprocess(body)


def _no_uploads(data: str) -> Any:
    def refuse(_: bytes, limits: ImageLimits | None = None) -> torch.Tensor:
        raise ImageRejected(f"this network reads {data} features, not images: send JSON")

    return refuse


def specialise(options: SequentialOptions) -> ModelSpec:
    """The spec of one job: its data set's task, data, augmentation and prediction I/O."""
    if _is_uploaded(options.data):
        return uploaded_data.uploaded_spec(SPEC, options, options_plan(options))
    source = DATA[options.data].source
    return dataclasses.replace(
        SPEC,
        task=source.task,
        load_data=source.load_data,
        preprocess=lambda inputs: source.preprocess(_unwrap(source, inputs)),
        postprocess=source.postprocess,
        answer=source.answer,
        decode_upload=source.decode_upload or _no_uploads(options.data),
        augment=source.augment,
        tensors=source.tensors,
        specialise=None,
    )


def load_data(options: SequentialOptions, data_root: DataRoot) -> TrainingData:
    if _is_uploaded(options.data):
        return specialise(options).load_data(options, data_root)
    return DATA[options.data].source.load_data(options, data_root)


def _decode_any(data: bytes, limits: ImageLimits | None = None) -> torch.Tensor:
    raise ImageRejected("this model's image decoder depends on the job's data: pick a job")


def _augment(options: SequentialOptions) -> Any:
    if _is_uploaded(options.data):
        augment = specialise(options).augment
        return augment(options) if augment is not None else None
    source = DATA[options.data].source
    return source.augment(options) if source.augment is not None else None


SPEC = register(
    ModelSpec(
        name="sequential",
        summary="Any network written as a layer list, on mnist, cifar10, diabetes or an upload.",
        task="multiclass",
        options=SequentialOptions,
        inputs=SequentialInputs,
        build=build,
        load_data=load_data,
        preprocess=_preprocess_any,
        postprocess=mnist_mlp.postprocess,
        # Each job answers as its data set's built-in model does.
        answer=mnist_mlp.MnistAnswer
        | cifar10_cnn.Cifar10Answer
        | diabetes.DiabetesAnswer
        | image_classifier.ImageClassAnswer
        | table_answers.TabularClassAnswer
        | table_answers.TabularValueAnswer,
        decode_upload=_decode_any,
        augment=_augment,
        # The default data set's (mnist); each job answers with its own (specialise).
        tensors=mnist_mlp.SPEC.tensors,
        specialise=specialise,
        describe=describe,
        presets=PRESETS,
    )
)
