"""Networks as data: an ``nn.Sequential`` built from a validated layer list, on a built-in set.

``{"data": "cifar10", "layers": [{"type": "conv2d", "out_channels": 32, ...}, ...]}``. The
data set brings its task, loss, option defaults, augmentation, prediction inputs and outputs
from the built-in model that reads it; the list is checked on the meta device when the job
is submitted (shapes, output size, limits), so a list that cannot work is a 422 then, not a
failed job later.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal

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

from torchkiln.models import cifar10_cnn, diabetes, mnist_mlp
from torchkiln.models.common.images import ImageLimits, ImageRejected
from torchkiln.models.common.layers import Layer
from torchkiln.models.common.network import Limits, Plan, build_network, plan_network
from torchkiln.models.common.options import TrainOptions
from torchkiln.models.common.presets import PRESETS
from torchkiln.models.common.registry import DataRoot, ModelSpec, TrainingData, register
from torchkiln.models.common.summary import NetworkSummary, summarise

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


# The network a job without ``layers`` gets: its data set's built-in one.
DEFAULT_PRESETS = {"mnist": "mnist_mlp", "cifar10": "cifar10_cnn", "diabetes": "diabetes_mlp"}


def _default_layers(data: str = "mnist") -> list[dict[str, Any]]:
    return next(p for p in PRESETS if p["name"] == DEFAULT_PRESETS[data])["params"]["layers"]


def plan_for(data: str, layers: list[Any]) -> Plan:
    """The checked plan of ``layers`` on ``data`` (raises LayerError, a ValueError)."""
    entry = DATA[data]
    plan = plan_network(layers, entry.input_shape, LIMITS)
    if plan.output_shape != (entry.outputs,):
        raise ValueError(
            f"layers: the network outputs {'×'.join(map(str, plan.output_shape))} values a "
            f"sample; {data} needs {entry.what}: end with "
            f'{{"type": "linear", "out_features": {entry.outputs}}}'
        )
    return plan


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


def _as_dict(layer: Any) -> dict[str, Any]:
    return layer.model_dump(exclude_unset=True) if isinstance(layer, BaseModel) else dict(layer)


class SequentialOptions(TrainOptions):
    """A layer list on a built-in data set; optimizer defaults come from the data's model."""

    data: DataName = Field("mnist", description="Built-in data set: mnist, cifar10 or diabetes.")
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
    def _fill_data_defaults(cls, params: Any) -> Any:
        # A copy of a built-in network should train as the built-in does by default.
        data = params.get("data", "mnist") if isinstance(params, dict) else None
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
        return {**dumped, **chosen}

    @field_validator("layers")
    @classmethod
    def _check_layers(cls, layers: list[Any], info: ValidationInfo) -> list[Any]:
        if "data" in info.data:
            plan_for(info.data["data"], layers)
        return layers

    @model_validator(mode="after")
    def _check_loss(self) -> SequentialOptions:
        task = DATA[self.data].source.task
        if self.loss is None:
            self.loss = DEFAULT_LOSS[task]
        elif self.loss not in LOSSES_BY_TASK[task]:
            allowed = ", ".join(sorted(LOSSES_BY_TASK[task]))
            raise ValueError(f"loss {self.loss!r} does not fit {self.data} ({task}): use {allowed}")
        if self.augment and DATA[self.data].source.augment is None:
            raise ValueError(f"augment applies to image data, not {self.data}")
        return self


class SequentialInputs(RootModel):
    """Prediction body: the body of the data set's built-in model (image(s) or features)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"image": mnist_mlp.MnistInputs.EXAMPLE},
                {"image": cifar10_cnn.Cifar10Inputs.EXAMPLE},
                {"features": [diabetes.EXAMPLE_ROW]},
            ]
        }
    )

    root: mnist_mlp.MnistInputs | cifar10_cnn.Cifar10Inputs | diabetes.DiabetesInputs


def build(options: SequentialOptions) -> nn.Module:
    return build_network(plan_for(options.data, options.layers))


def describe(options: SequentialOptions) -> NetworkSummary:
    return summarise(plan_for(options.data, options.layers))


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
    source = next(e.source for e in DATA.values() if isinstance(body, e.source.inputs))
    return source.preprocess(body)


def _no_uploads(data: str) -> Any:
    def refuse(_: bytes, limits: ImageLimits | None = None) -> torch.Tensor:
        raise ImageRejected(f"this network reads {data} features, not images: send JSON")

    return refuse


def specialise(options: SequentialOptions) -> ModelSpec:
    """The spec of one job: its data set's task, data, augmentation and prediction I/O."""
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
    return DATA[options.data].source.load_data(options, data_root)


def _decode_any(data: bytes, limits: ImageLimits | None = None) -> torch.Tensor:
    raise ImageRejected("this model's image decoder depends on the job's data: pick a job")


def _augment(options: SequentialOptions) -> Any:
    source = DATA[options.data].source
    return source.augment(options) if source.augment is not None else None


SPEC = register(
    ModelSpec(
        name="sequential",
        summary="Any network written as a layer list, on the mnist, cifar10 or diabetes data.",
        task="multiclass",
        options=SequentialOptions,
        inputs=SequentialInputs,
        build=build,
        load_data=load_data,
        preprocess=_preprocess_any,
        postprocess=mnist_mlp.postprocess,
        # Each job answers as its data set's built-in model does.
        answer=mnist_mlp.MnistAnswer | cifar10_cnn.Cifar10Answer | diabetes.DiabetesAnswer,
        decode_upload=_decode_any,
        augment=_augment,
        # The default data set's (mnist); each job answers with its own (specialise).
        tensors=mnist_mlp.SPEC.tensors,
        specialise=specialise,
        describe=describe,
        presets=PRESETS,
    )
)
