"""A version as a self-contained graph: ONNX (``torch.onnx.export``) or a ``torch.export`` archive.

The graph takes the model's tensor inputs (the Open Inference Protocol ones: raw pixel levels
or feature rows) and gives its numeric tensor outputs, so preprocessing travels with it. Each
file carries its model card: ONNX in ``metadata_props``, the archive as an extra file.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass
from typing import Any

import torch
from sqlmodel import Session
from torch import nn

from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import TensorSignature
from torchkiln.service.api.serving.model_card import model_card
from torchkiln.service.api.serving.tensor_codec import TORCH_DTYPES
from torchkiln.service.store.artifact_store import ArtifactStore
from torchkiln.service.store.checkpoint_files import fetch_checkpoint
from torchkiln.service.store.errors import ExportUnavailable, InvalidInput, NoCheckpoint
from torchkiln.service.store.jobs import get_job
from torchkiln.service.store.progress import serving_checkpoint

CARD_KEY = "torchkiln_model_card"
CARD_FILE = "model_card.json"
EXAMPLE_BATCH = 2  # not 1: the exporters would specialise a size-1 batch dimension
# torch.export and the dynamo-based ONNX exporter trace through global state: one at a time.
_EXPORT_LOCK = threading.Lock()


class TensorGraph(nn.Module):
    """The network between its signature's input conversion and its numeric outputs."""

    def __init__(self, network: nn.Module, signature: TensorSignature) -> None:
        super().__init__()
        self.network, self.signature = network, signature
        self.input_names = [t.name for t in signature.inputs]
        self.output_names = [t.name for t in signature.outputs if t.datatype != "BYTES"]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch = self.signature.to_batch(dict(zip(self.input_names, inputs, strict=True)))
        named = self.signature.from_outputs(self.network(batch))
        return tuple(named[name] for name in self.output_names)


@dataclass(frozen=True)
class Exported:
    filename: str
    media_type: str
    data: bytes


def export_graph(
    session: Session, store: ArtifactStore, job_id: int, export_format: str
) -> Exported:
    """The job's serving checkpoint as ``onnx`` or ``torch_export``, its model card inside."""
    if export_format == "onnx":
        require_onnx()
    job = get_job(session, job_id)
    options = REGISTRY[job.model].parse_options(job.params)
    spec = REGISTRY[job.model].for_options(options)  # a sequential job's own data set
    if spec.tensors is None:
        raise InvalidInput(f"{job.model} declares no tensor signature; export it as safetensors")
    checkpoint = serving_checkpoint(session, job_id)
    if checkpoint is None:
        raise NoCheckpoint(f"job {job_id} ({job.status}) has no checkpoint to export")
    network = spec.build(options)
    payload = fetch_checkpoint(store, checkpoint.path, torch.device("cpu"), checkpoint.sha256)
    network.load_state_dict(payload["model"])
    graph = TensorGraph(network, spec.tensors).eval()
    card = json.dumps(model_card(session, job, checkpoint, export_format), default=str)
    stem = f"{job.model}-job{job_id}"
    with _EXPORT_LOCK, torch.no_grad():
        if export_format == "onnx":
            return Exported(f"{stem}.onnx", "application/onnx", to_onnx(graph, card))
        return Exported(f"{stem}.pt2", "application/octet-stream", to_program(graph, card))


def example_inputs(signature: TensorSignature) -> tuple[torch.Tensor, ...]:
    return tuple(
        torch.zeros(
            [EXAMPLE_BATCH if d == -1 else d for d in t.shape], dtype=TORCH_DTYPES[t.datatype]
        )
        for t in signature.inputs
    )


def dynamic_shapes(signature: TensorSignature) -> tuple[tuple[dict[int, Any], ...]]:
    """-1 dimensions as one shared batch size; nested once, as ``forward(*inputs)`` is."""
    batch = torch.export.Dim("batch")
    return (tuple({i: batch for i, d in enumerate(t.shape) if d == -1} for t in signature.inputs),)


def require_onnx() -> None:
    """The dynamo-based exporter needs onnx and onnxscript: say so plainly, before any work."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ExportUnavailable(
            "ONNX export needs the 'export' extra (onnx, onnxscript): "
            "pip install 'torchkiln[export]'"
        ) from None


def to_onnx(graph: TensorGraph, card: str) -> bytes:
    program = torch.onnx.export(
        graph,
        example_inputs(graph.signature),
        dynamo=True,
        input_names=graph.input_names,
        output_names=graph.output_names,
        dynamic_shapes=dynamic_shapes(graph.signature),
        verbose=False,
    )
    assert program is not None
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = CARD_KEY, card
    return proto.SerializeToString()


def to_program(graph: TensorGraph, card: str) -> bytes:
    program = torch.export.export(
        graph, example_inputs(graph.signature), dynamic_shapes=dynamic_shapes(graph.signature)
    )
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={CARD_FILE: card})
    return buffer.getvalue()
