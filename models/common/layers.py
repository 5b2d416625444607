"""The layer catalogue of the ``sequential`` model: one pydantic options model per layer type.

Each model is derived from the torch class's own ``__init__`` signature (``inspect`` and its
type hints), so the JSON schema ``GET /models`` shows is torch's argument list. Arguments
that serving cannot use or that the network infers are left out: ``device``/``dtype``,
``inplace`` and ``return_indices`` (a tuple output breaks the chain), and the input size
(``in_features``, ``in_channels``, ``num_features``…), which may be given but defaults to the
previous layer's output.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model
from torch import nn

# Arguments no layer exposes: placement, aliasing, outputs that are not one tensor, and
# sparse gradients (most optimizers refuse them).
EXCLUDED = frozenset(
    {"self", "device", "dtype", "inplace", "return_indices", "sparse", "batch_first", "proj_size"}
)
JSON_SCALARS = (int, float, bool, str, type(None))
MAX_WIDTH = 1 << 20


@dataclass(frozen=True)
class LayerKind:
    """One catalogue entry: the torch class and which of its arguments come from the input.

    ``inferred`` maps an argument to how the input supplies it: ``"channels"`` (the first
    sample dimension) or ``"features"`` (the last). ``overrides`` narrows an argument's
    type or bounds where torch's hint is looser than what it accepts.
    """

    name: str
    torch_class: type[nn.Module]
    inferred: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    # Sample rank (dimensions after the batch) the layer reads, where torch fixes it.
    ranks: tuple[int, ...] | None = None


_WIDTH = Annotated[int, Field(ge=1, le=MAX_WIDTH)]
_SIZE = Annotated[int, Field(ge=1, le=1024)]
_PROBABILITY = Annotated[float, Field(ge=0, lt=1)]
# Bounded before anything is built: each stacked layer is a module made at submit time.
_RECURRENT_OPTIONS = {
    "hidden_size": (_WIDTH, ...),
    "num_layers": (Annotated[int, Field(ge=1, le=16)], 1),
    "dropout": (_PROBABILITY, 0.0),
}

KINDS: tuple[LayerKind, ...] = (
    LayerKind("linear", nn.Linear, {"in_features": "features"}, {"out_features": (_WIDTH, ...)}),
    LayerKind("flatten", nn.Flatten, overrides={"start_dim": (Annotated[int, Field(ge=1)], 1)}),
    LayerKind("dropout", nn.Dropout, overrides={"p": (_PROBABILITY, 0.5)}),
    LayerKind("dropout2d", nn.Dropout2d, overrides={"p": (_PROBABILITY, 0.5)}, ranks=(3,)),
    LayerKind("batchnorm1d", nn.BatchNorm1d, {"num_features": "channels"}, ranks=(1, 2)),
    LayerKind("batchnorm2d", nn.BatchNorm2d, {"num_features": "channels"}, ranks=(3,)),
    LayerKind("layernorm", nn.LayerNorm, {"normalized_shape": "features"}),
    LayerKind(
        "groupnorm",
        nn.GroupNorm,
        {"num_channels": "channels"},
        {"num_groups": (_SIZE, ...)},
        ranks=(2, 3),
    ),
    LayerKind(
        "conv1d", nn.Conv1d, {"in_channels": "channels"}, {"out_channels": (_WIDTH, ...)}, (2,)
    ),
    LayerKind(
        "conv2d", nn.Conv2d, {"in_channels": "channels"}, {"out_channels": (_WIDTH, ...)}, (3,)
    ),
    LayerKind(
        "convtranspose2d",
        nn.ConvTranspose2d,
        {"in_channels": "channels"},
        {"out_channels": (_WIDTH, ...)},
        (3,),
    ),
    LayerKind("maxpool1d", nn.MaxPool1d, ranks=(2,)),
    LayerKind("maxpool2d", nn.MaxPool2d, ranks=(3,)),
    LayerKind("avgpool2d", nn.AvgPool2d, ranks=(3,)),
    LayerKind("adaptiveavgpool2d", nn.AdaptiveAvgPool2d, ranks=(3,)),
    LayerKind("adaptivemaxpool2d", nn.AdaptiveMaxPool2d, ranks=(3,)),
    LayerKind(
        "upsample",
        nn.Upsample,
        overrides={"mode": (Literal["nearest", "linear", "bilinear", "bicubic"], "nearest")},
        ranks=(2, 3),
    ),
    LayerKind("relu", nn.ReLU),
    LayerKind("leakyrelu", nn.LeakyReLU),
    LayerKind("gelu", nn.GELU, overrides={"approximate": (Literal["none", "tanh"], "none")}),
    LayerKind("elu", nn.ELU),
    LayerKind("sigmoid", nn.Sigmoid),
    LayerKind("tanh", nn.Tanh),
    LayerKind(
        "embedding",
        nn.Embedding,
        overrides={"num_embeddings": (_WIDTH, ...), "embedding_dim": (_WIDTH, ...)},
    ),
    LayerKind("lstm", nn.LSTM, {"input_size": "features"}, _RECURRENT_OPTIONS),
    LayerKind("gru", nn.GRU, {"input_size": "features"}, _RECURRENT_OPTIONS),
)
KIND_BY_NAME = {kind.name: kind for kind in KINDS}
RECURRENT = frozenset({"lstm", "gru"})


class LayerOptions(BaseModel):
    """The options every layer shares: its ``type``; subclasses add the torch arguments."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    type: str

    def arguments(self) -> dict[str, Any]:
        """The torch constructor's keyword arguments the user set (others take torch's)."""
        return self.model_dump(exclude={"type", "output"}, exclude_unset=True)


def _json_able(hint: Any) -> Any | None:
    """``hint`` with its non-JSON members (tensors, torch.Size) dropped; None if none remain."""
    if hint in JSON_SCALARS:
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return hint
    if origin in (Union, types.UnionType):
        kept = [k for k in (_json_able(a) for a in args) if k is not None]
        return Union[tuple(kept)] if kept else None  # noqa: UP007 (built from a tuple)
    if origin in (tuple, list):
        inner = [_json_able(a) if a is not Ellipsis else Ellipsis for a in args]
        if any(i is None for i in inner):
            return None
        return origin[tuple(inner)] if origin is tuple else list[inner[0]]
    return None


def _signature_of(torch_class: type[nn.Module]) -> inspect.Signature:
    # LSTM and GRU take *args and hand them to RNNBase, whose signature names them.
    init = nn.RNNBase.__init__ if issubclass(torch_class, nn.RNNBase) else torch_class.__init__
    return inspect.signature(init)


def _fields_of(kind: LayerKind) -> dict[str, Any]:
    init = nn.RNNBase.__init__ if issubclass(kind.torch_class, nn.RNNBase) else None
    hints = typing.get_type_hints(init or kind.torch_class.__init__)
    fields: dict[str, Any] = {}
    for name, parameter in _signature_of(kind.torch_class).parameters.items():
        if name in EXCLUDED or name == "mode" and init is not None or name.startswith("_"):
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if name in kind.overrides:
            fields[name] = kind.overrides[name]
            continue
        hint = _json_able(hints.get(name, type(parameter.default)))
        if hint is None:
            continue
        if name in kind.inferred:
            fields[name] = (hint | None, Field(None, description="Inferred from the input."))
        elif parameter.default is inspect.Parameter.empty:
            fields[name] = (hint, ...)
        else:
            fields[name] = (hint, parameter.default)
    return fields


def _options_model(kind: LayerKind) -> type[LayerOptions]:
    fields = _fields_of(kind)
    if kind.name in RECURRENT:
        fields["output"] = (
            Literal["sequence", "last"],
            Field("last", description="The whole output sequence, or its last step only."),
        )
    inferred = ", ".join(kind.inferred) or "nothing"
    return create_model(
        f"{kind.torch_class.__name__}Layer",
        __base__=LayerOptions,
        __doc__=f"torch.nn.{kind.torch_class.__name__}; inferred from the input: {inferred}.",
        type=(Literal[kind.name], ...),
        **fields,
    )


LAYER_MODELS: dict[str, type[LayerOptions]] = {kind.name: _options_model(kind) for kind in KINDS}


class ResidualLayer(LayerOptions):
    """A sub-list whose input is added to its output (a 1×1 projection when shapes differ)."""

    type: Literal["residual"]
    layers: list[Layer] = Field(min_length=1)

    def arguments(self) -> dict[str, Any]:
        return {}


Layer = Annotated[
    Union[(*LAYER_MODELS.values(), ResidualLayer)],  # noqa: UP007 (built from a tuple)
    Field(discriminator="type"),
]
ResidualLayer.model_rebuild()
