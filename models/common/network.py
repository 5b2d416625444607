"""A layer list → a planned network: shapes inferred on the meta device, then a real build.

``plan_network`` walks the list with a meta tensor (shapes and dtypes only: no memory, no
compute), fills in each layer's input size from the previous layer's output, counts its
parameters and FLOPs (torch's own ``FlopCounterMode``), and raises ``LayerError`` naming the
layer (``layers[5] (linear)``) and the shapes that disagree. ``build_network`` then makes the
same modules on a real device, in list order, so a list that mirrors a built-in model gets
the built-in's weights for the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from torchkiln.models.common.layers import (
    KIND_BY_NAME,
    RECURRENT,
    LayerOptions,
    ResidualLayer,
)

# What each inferred argument is called in an error message.
NOUNS = {
    "in_features": "input features",
    "in_channels": "input channels",
    "num_features": "channels",
    "num_channels": "channels",
    "input_size": "input features per step",
    "normalized_shape": "features",
}
RANK_NAMES = {1: "(features)", 2: "(channels, length)", 3: "(channels, height, width)"}


class LayerError(ValueError):
    """A layer list that cannot work; the message names the layer and the shapes."""


@dataclass(frozen=True)
class Limits:
    """What a layer list may cost: layers (nested ones count), parameters, FLOPs, activations."""

    max_layers: int
    max_parameters: int
    max_flops: int
    max_activations: int


@dataclass
class PlannedLayer:
    """One layer with its input size resolved: how to make it, and what it outputs."""

    label: str
    type: str
    make: Callable[[], nn.Module]
    output_shape: tuple[int, ...]
    parameters: int
    flops: int
    children: list[PlannedLayer] = field(default_factory=list)


@dataclass
class Plan:
    """The planned network: its layers, input and output sample shapes, and totals."""

    input_shape: tuple[int, ...]
    layers: list[PlannedLayer]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].output_shape if self.layers else self.input_shape

    @property
    def parameters(self) -> int:
        return sum(layer.parameters for layer in self.layers)

    @property
    def flops(self) -> int:
        return sum(layer.flops for layer in self.layers)


class Recurrent(nn.Module):
    """An LSTM or GRU over the sample's leading dimensions as time, its last one as features.

    A (1, 28, 28) MNIST image is then 28 steps of 28 pixels: read row by row.
    """

    def __init__(self, rnn: nn.RNNBase, output: str) -> None:
        super().__init__()
        self.rnn = rnn
        self.is_last_step = output == "last"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, _ = self.rnn(x.flatten(1, -2) if x.dim() > 3 else x)
        if not self.is_last_step:
            return steps
        if not self.rnn.bidirectional:
            return steps[:, -1]
        # The backward direction ends at the first step: there it has read the whole input.
        hidden = self.rnn.hidden_size
        return torch.cat([steps[:, -1, :hidden], steps[:, 0, hidden:]], dim=1)


class Residual(nn.Module):
    """``body(x) + x``, with ``x`` through a 1×1 ``projection`` where the shapes differ."""

    def __init__(self, body: nn.Sequential, projection: nn.Module | None) -> None:
        super().__init__()
        self.body = body
        self.projection = projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.projection is None else self.projection(x)
        return self.body(x) + shortcut


def shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(n) for n in shape) if shape else "scalar"


def _received(shape: tuple[int, ...], flattened_from: tuple[int, ...] | None) -> str:
    return shape_text(shape) + (_origin(shape, flattened_from) if len(shape) == 1 else "")


def _origin(shape: tuple[int, ...], flattened_from: tuple[int, ...] | None) -> str:
    """What a size came from: the shape a flatten collapsed, or the whole sample shape."""
    if len(shape) == 1:
        return f" ({shape_text(flattened_from)})" if flattened_from else ""
    return f" ({shape_text(shape)})"


def _inferred_value(source: str, shape: tuple[int, ...]) -> int:
    return shape[0] if source == "channels" else shape[-1]


def _resolve_arguments(
    label: str, layer: LayerOptions, shape: tuple[int, ...], flattened_from: tuple[int, ...] | None
) -> dict:
    kind = KIND_BY_NAME[layer.type]
    if kind.ranks is not None and len(shape) not in kind.ranks:
        wanted = " or ".join(RANK_NAMES.get(r, f"rank {r}") for r in kind.ranks)
        raise LayerError(
            f"{label}: expects input of shape {wanted}, receives {_received(shape, flattened_from)}"
        )
    arguments = layer.arguments()
    for name, source in kind.inferred.items():
        if not shape:
            raise LayerError(f"{label}: needs a {source} dimension, receives a scalar")
        actual = _inferred_value(source, shape)
        given = arguments.get(name)
        if given is None:
            arguments[name] = actual
        elif given != actual and not (isinstance(given, list | tuple) and list(given) == [actual]):
            raise LayerError(
                f"{label}: expects {given} {NOUNS[name]}, "
                f"receives {actual}{_origin(shape, flattened_from)}"
            )
    if layer.type in RECURRENT:
        arguments["batch_first"] = True
    return arguments


def _factory(layer: LayerOptions, arguments: dict) -> Callable[[], nn.Module]:
    torch_class = KIND_BY_NAME[layer.type].torch_class
    if layer.type in RECURRENT:
        output = getattr(layer, "output", "last")
        return lambda: Recurrent(torch_class(**arguments), output)
    return partial(torch_class, **arguments)


def _projection(label: str, into: tuple[int, ...], out: tuple[int, ...]) -> Callable | None:
    """A 1×1 map from the residual's input shape to its body's output shape, or None."""
    if into == out:
        return None
    if len(into) == 1 and len(out) == 1:
        return partial(nn.Linear, into[0], out[0], bias=False)
    if len(into) in (2, 3) and len(into) == len(out):
        strides = {a // b for a, b in zip(into[1:], out[1:], strict=True) if b and a % b == 0}
        sides_divide = all(b and a % b == 0 for a, b in zip(into[1:], out[1:], strict=True))
        if sides_divide and len(strides) == 1:
            conv = nn.Conv1d if len(into) == 2 else nn.Conv2d
            return partial(conv, into[0], out[0], 1, stride=strides.pop(), bias=False)
    raise LayerError(
        f"{label}: its layers map {shape_text(into)} to {shape_text(out)}, which no 1×1 "
        "projection of the input can be added to"
    )


def _run_meta(label: str, module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    counter = FlopCounterMode(display=False)
    # Eval mode: batch norm refuses a one-sample batch when training.
    module.eval()
    try:
        with counter:
            y = module(x)
    except Exception as error:  # torch's own message says what it refused
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise LayerError(
            f"{label}: cannot take an input of shape {shape_text(x.shape[1:])} "
            f"({x.dtype}): {first_line}"
        ) from None
    if not isinstance(y, torch.Tensor):
        raise LayerError(f"{label}: does not output one tensor")
    return y, int(counter.get_total_flops())


def _make_meta(label: str, make: Callable[[], nn.Module]) -> nn.Module:
    try:
        with torch.device("meta"):
            return make()
    except Exception as error:  # bad argument combinations: torch says which
        raise LayerError(f"{label}: {error}") from None


def _plan_layers(
    layers: Sequence[LayerOptions], x: torch.Tensor, prefix: str, limits: Limits, count: list[int]
) -> tuple[list[PlannedLayer], torch.Tensor]:
    planned: list[PlannedLayer] = []
    flattened_from: tuple[int, ...] | None = None
    for index, layer in enumerate(layers):
        label = f"{prefix}[{index}] ({layer.type})"
        count[0] += 1
        if count[0] > limits.max_layers:
            raise LayerError(f"{label}: more than {limits.max_layers} layers (nested ones count)")
        shape = tuple(x.shape[1:])
        if isinstance(layer, ResidualLayer):
            children, y = _plan_layers(layer.layers, x, f"{prefix}[{index}].layers", limits, count)
            projection = _projection(label, shape, tuple(y.shape[1:]))
            make = partial(_make_residual, [c.make for c in children], projection)
            module = _make_meta(label, make)
            y, flops = _run_meta(label, module, x)
        else:
            children = []
            make = _factory(layer, _resolve_arguments(label, layer, shape, flattened_from))
            module = _make_meta(label, make)
            y, flops = _run_meta(label, module, x)
        out = tuple(y.shape[1:])
        if math.prod(out) > limits.max_activations:
            raise LayerError(
                f"{label}: outputs {shape_text(out)} = {math.prod(out):,} values a sample, over "
                f"the limit of {limits.max_activations:,}"
            )
        if layer.type == "flatten":
            flattened_from = shape
        elif len(out) != 1 or out != shape:
            flattened_from = None
        parameters = sum(p.numel() for p in module.parameters())
        planned.append(PlannedLayer(label, layer.type, make, out, parameters, flops, children))
        x = y
    return planned, x


def _make_residual(makes: list[Callable[[], nn.Module]], projection: Callable | None) -> Residual:
    body = nn.Sequential(*(make() for make in makes))
    return Residual(body, projection() if projection is not None else None)


def plan_network(
    layers: Sequence[LayerOptions],
    input_shape: tuple[int, ...],
    limits: Limits,
    input_dtype: torch.dtype = torch.float32,
) -> Plan:
    """Resolve, check and cost ``layers`` for samples of ``input_shape`` (raises LayerError)."""
    if not layers:
        raise LayerError("layers: the list is empty; give at least one layer")
    x = torch.empty((1, *input_shape), dtype=input_dtype, device="meta")
    planned, _ = _plan_layers(layers, x, "layers", limits, [0])
    plan = Plan(tuple(input_shape), planned)
    if plan.parameters > limits.max_parameters:
        raise LayerError(
            f"layers: {plan.parameters:,} parameters, over the limit of {limits.max_parameters:,}"
        )
    if plan.flops > limits.max_flops:
        raise LayerError(
            f"layers: {plan.flops:,} FLOPs a sample, over the limit of {limits.max_flops:,}"
        )
    return plan


def build_network(plan: Plan) -> nn.Sequential:
    """The planned network's real modules, made in list order on the current device."""
    return nn.Sequential(*(layer.make() for layer in plan.layers))
