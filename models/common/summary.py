"""The summary of a planned network: per layer its output shape, parameters and FLOPs.

The tutorial's ``summary(net, input_shape)``, computed on the meta device from the plan, so
it costs no memory and no real compute. FLOPs are torch's ``FlopCounterMode`` counts for one
sample (matrix multiplies and convolutions; element-wise layers count 0).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, Field

from torchkiln.models.common.network import Plan, PlannedLayer, build_network


class LayerSummary(BaseModel):
    """One layer: where it is in the list, its type, what it outputs and what it costs."""

    layer: str = Field(description='Its place in the list, e.g. "layers[3]".')
    type: str
    output_shape: list[int] = Field(description="Per sample, without the batch dimension.")
    parameters: int
    flops: int = Field(description="Floating-point operations for one sample.")
    layers: list[LayerSummary] = Field(
        default_factory=list, description="A residual block's own layers."
    )


class NetworkSummary(BaseModel):
    """A network described without training it."""

    input_shape: list[int]
    output_shape: list[int]
    layers: list[LayerSummary]
    parameters: int
    flops: int = Field(description="Floating-point operations for one sample, forward only.")
    checkpoint_bytes: int = Field(
        description="Bytes of the network's weights and buffers (its exported safetensors "
        "file, less the header); a resume checkpoint adds the optimizer's state."
    )


def _layer_summary(layer: PlannedLayer) -> LayerSummary:
    return LayerSummary(
        layer=layer.label.split(" ")[0],
        type=layer.type,
        output_shape=list(layer.output_shape),
        parameters=layer.parameters,
        flops=layer.flops,
        layers=[_layer_summary(child) for child in layer.children],
    )


def summarise(plan: Plan) -> NetworkSummary:
    """The plan's per-layer figures and totals."""
    with torch.device("meta"):
        state = build_network(plan).state_dict()
    return NetworkSummary(
        input_shape=list(plan.input_shape),
        output_shape=list(plan.output_shape),
        layers=[_layer_summary(layer) for layer in plan.layers],
        parameters=plan.parameters,
        flops=plan.flops,
        checkpoint_bytes=sum(t.numel() * t.element_size() for t in state.values()),
    )
