"""Every model in the catalogue exports to ONNX and to torch.export, answering as PyTorch does."""

from __future__ import annotations

import io

import numpy as np
import onnxruntime
import pytest
import torch

from torchkiln.models import REGISTRY
from torchkiln.service.api.serving.graph_export import TensorGraph, to_onnx, to_program
from torchkiln.service.api.serving.tensor_codec import TORCH_DTYPES


def real_inputs(graph: TensorGraph, batch: int = 3) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    tensors = []
    for spec in graph.signature.inputs:
        shape = [batch if d == -1 else d for d in spec.shape]
        if spec.datatype == "UINT8":
            tensors.append(torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8))
        else:
            tensors.append(
                torch.rand(shape, generator=generator, dtype=TORCH_DTYPES[spec.datatype])
            )
    return tuple(tensors)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_model_exports_and_onnxruntime_agrees(name: str) -> None:
    options = REGISTRY[name].example_options()
    spec = REGISTRY[name].for_options(options)
    assert spec.tensors is not None
    torch.manual_seed(0)
    graph = TensorGraph(spec.build(options), spec.tensors).eval()
    inputs = real_inputs(graph)
    with torch.no_grad():
        expected = graph(*inputs)
        session = onnxruntime.InferenceSession(to_onnx(graph, "{}"))
        program = torch.export.load(io.BytesIO(to_program(graph, "{}")))
        archived = program.module()(*inputs)
    feed = {n: t.numpy() for n, t in zip(graph.input_names, inputs, strict=True)}
    for mine, theirs, again in zip(expected, session.run(None, feed), archived, strict=True):
        np.testing.assert_allclose(theirs, mine.numpy(), rtol=0, atol=1e-5)
        assert torch.equal(again, mine)
