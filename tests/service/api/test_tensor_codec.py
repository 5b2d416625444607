"""Open Inference Protocol tensors: nested and binary data in, BYTES and binary data out."""

from __future__ import annotations

import struct

import pytest
import torch

from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import TensorSpec
from torchkiln.service.api.serving.tensor_codec import (
    ProtocolError,
    decode_inputs,
    encode_output,
    parse_request,
)

X = TensorSpec("x", "FP32", (-1, 2))


def test_nested_json_and_binary_inputs_decode_alike() -> None:
    nested, _ = parse_request(
        b'{"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32",'
        b' "data": [[1, 2], [3, 4]]}]}',
        None,
    )
    header = b'{"inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT64",'
    header += b' "parameters": {"binary_data_size": 32}}]}'
    raw = struct.pack("<4q", 1, 2, 3, 4)
    binary, rest = parse_request(header + raw, str(len(header)))
    a = decode_inputs(nested, b"", [X])["x"]
    b = decode_inputs(binary, rest, [X])["x"]
    assert a.dtype == torch.float32 and b.dtype == torch.int64
    assert torch.equal(a, b.float()) and a.shape == (2, 2)
    with pytest.raises(ProtocolError, match="bytes after"):
        decode_inputs(nested, b"extra", [X])


def test_bytes_outputs_are_class_names_as_json_or_length_prefixed() -> None:
    signature = REGISTRY["cifar10_cnn"].tensors
    assert signature is not None and signature.strings is not None
    names = signature.strings({"label": torch.tensor([3, 0])})["class"]
    assert names == ["cat", "airplane"]
    spec = next(t for t in signature.outputs if t.datatype == "BYTES")
    assert encode_output(spec, names, binary=False).entry["data"] == names
    packed = encode_output(spec, names, binary=True)
    assert packed.data == b"\x03\x00\x00\x00cat\x08\x00\x00\x00airplane"
    assert packed.entry["parameters"] == {"binary_data_size": len(packed.data)}


@pytest.mark.parametrize("length", ["²", "٣", "-1", "99"])
def test_a_header_length_that_is_no_plain_number_or_too_long_is_refused(length: str) -> None:
    # A server decodes header bytes as latin-1: b"\xb2" is "²", a digit to isdigit(), not int().
    with pytest.raises(ProtocolError, match="does not fit"):
        parse_request(b'{"inputs": []}', length)
