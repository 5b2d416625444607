"""Open Inference Protocol (REST v2) tensors: JSON and binary data in, torch tensors out.

A request body is JSON, optionally followed by raw tensor bytes (the binary tensor data
extension that Triton's clients use by default): ``Inference-Header-Content-Length`` says
where the JSON ends, and each binary input says its size in ``parameters.binary_data_size``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import torch
from pydantic import BaseModel, ConfigDict, Field

from torchkiln.models.common.registry import TensorSpec

TORCH_DTYPES: dict[str, torch.dtype] = {
    "BOOL": torch.bool,
    "UINT8": torch.uint8,
    "INT8": torch.int8,
    "INT16": torch.int16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "FP16": torch.float16,
    "FP32": torch.float32,
    "FP64": torch.float64,
}
BYTES = "BYTES"
HEADER_LENGTH = "Inference-Header-Content-Length"
MAX_DIM = 2**31 - 1


class ProtocolError(Exception):
    """A request the protocol (or the model's signature) does not allow; answered as 400."""


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=128)
    shape: list[int] = Field(max_length=8)
    datatype: str = Field(max_length=16)
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: Any = None


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=128)
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = Field(None, max_length=256)
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[RequestInput] = Field(min_length=1, max_length=16)
    outputs: list[RequestOutput] | None = Field(None, max_length=16)


def parse_request(body: bytes, header_length: str | None) -> tuple[InferRequest, bytes]:
    """The JSON part of the body as a request, and the binary tensor bytes after it."""
    split = len(body)
    if header_length is not None:
        # isascii: "²".isdigit() is true, and int() refuses it.
        is_number = header_length.isascii() and header_length.isdigit()
        if not is_number or int(header_length) > len(body):
            raise ProtocolError(f"{HEADER_LENGTH} {header_length!r} does not fit the body")
        split = int(header_length)
    try:
        return InferRequest.model_validate_json(body[:split]), body[split:]
    except ValueError as error:
        raise ProtocolError(f"invalid inference request: {error}") from None


def decode_inputs(
    request: InferRequest, binary: bytes, specs: Sequence[TensorSpec]
) -> dict[str, torch.Tensor]:
    """Each input the signature names, as a tensor of its spec's shape; binary parts in order."""
    wanted = {spec.name: spec for spec in specs}
    given = {item.name for item in request.inputs}
    if given != set(wanted):
        raise ProtocolError(
            f"expected inputs {sorted(wanted)}, got {sorted(given)}",
        )
    tensors: dict[str, torch.Tensor] = {}
    offset = 0
    for item in request.inputs:
        spec = wanted[item.name]
        _check_shape(item, spec)
        size = item.parameters.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise ProtocolError(f"input {item.name!r}: binary_data_size {size!r} is wrong")
            tensors[item.name] = _from_bytes(item, binary[offset : offset + size])
            offset += size
        else:
            tensors[item.name] = _from_json(item)
    if offset != len(binary):
        raise ProtocolError(f"{len(binary) - offset} bytes after the last binary input")
    return tensors


def _check_shape(item: RequestInput, spec: TensorSpec) -> None:
    if item.datatype == BYTES or item.datatype not in TORCH_DTYPES:
        raise ProtocolError(
            f"input {item.name!r}: datatype {item.datatype!r}; this model takes {spec.datatype}"
        )
    fits = len(item.shape) == len(spec.shape) and all(
        0 <= got <= MAX_DIM and want in (-1, got)
        for got, want in zip(item.shape, spec.shape, strict=True)
    )
    if not fits:
        raise ProtocolError(f"input {item.name!r}: shape {item.shape}, expected {list(spec.shape)}")


def _from_json(item: RequestInput) -> torch.Tensor:
    flat = _flatten(item.data)
    if len(flat) != math.prod(item.shape):
        raise ProtocolError(
            f"input {item.name!r}: {len(flat)} values for shape {item.shape}",
        )
    if any(isinstance(v, (str, bytes, dict, type(None))) for v in flat):
        raise ProtocolError(f"input {item.name!r}: data must be numbers")
    try:
        values = torch.tensor(flat, dtype=TORCH_DTYPES[item.datatype])
    except (TypeError, RuntimeError, OverflowError) as error:
        raise ProtocolError(f"input {item.name!r}: {error}") from None
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        raise ProtocolError(f"input {item.name!r}: values must be finite")
    return values.reshape(item.shape)


def _from_bytes(item: RequestInput, chunk: bytes) -> torch.Tensor:
    dtype = TORCH_DTYPES[item.datatype]
    count = math.prod(item.shape)
    if len(chunk) != count * dtype.itemsize:
        raise ProtocolError(
            f"input {item.name!r}: {len(chunk)} bytes for shape {item.shape} of {item.datatype}"
        )
    values = (
        torch.frombuffer(bytearray(chunk), dtype=dtype) if chunk else torch.empty(0, dtype=dtype)
    )
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        raise ProtocolError(f"input {item.name!r}: values must be finite")
    return values.reshape(item.shape)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise ProtocolError("tensor data must be a list (flat, or nested in row-major order)")
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            flat.append(value)
        else:
            stack.pop()
    return flat


@dataclass(frozen=True)
class EncodedOutput:
    """One output's JSON entry, and its bytes when it goes as binary data."""

    entry: dict[str, Any]
    data: bytes | None


def encode_output(spec: TensorSpec, value: torch.Tensor | list[str], binary: bool) -> EncodedOutput:
    if spec.datatype == BYTES:
        strings = [s.encode() for s in value]  # type: ignore[union-attr]
        entry = {"name": spec.name, "datatype": BYTES, "shape": [len(strings)]}
        if not binary:
            return EncodedOutput({**entry, "data": [s.decode() for s in strings]}, None)
        raw = b"".join(len(s).to_bytes(4, "little") + s for s in strings)
        return EncodedOutput({**entry, "parameters": {"binary_data_size": len(raw)}}, raw)
    assert isinstance(value, torch.Tensor)
    tensor = value.detach().to("cpu", TORCH_DTYPES[spec.datatype]).contiguous()
    entry = {"name": spec.name, "datatype": spec.datatype, "shape": list(tensor.shape)}
    if not binary:
        return EncodedOutput({**entry, "data": tensor.reshape(-1).tolist()}, None)
    raw = tensor.numpy().tobytes()
    return EncodedOutput({**entry, "parameters": {"binary_data_size": len(raw)}}, raw)


def wanted_outputs(
    request: InferRequest, specs: Sequence[TensorSpec]
) -> list[tuple[TensorSpec, bool]]:
    """The outputs to send (all, unless the request names some) and whether each is binary."""
    by_name = {spec.name: spec for spec in specs}
    default_binary = request.parameters.get("binary_data_output") is True
    if request.outputs is None:
        return [(spec, default_binary) for spec in specs]
    unknown = [o.name for o in request.outputs if o.name not in by_name]
    if unknown:
        raise ProtocolError(f"unknown outputs {unknown}; this model has {sorted(by_name)}")
    return [
        (by_name[o.name], o.parameters.get("binary_data", default_binary) is True)
        for o in request.outputs
    ]


def response_body(header: dict[str, Any], outputs: list[EncodedOutput]) -> tuple[bytes, int | None]:
    """The response bytes, and the JSON length when binary outputs follow it."""
    json_part = orjson.dumps({**header, "outputs": [o.entry for o in outputs]})
    binary = [o.data for o in outputs if o.data is not None]
    if not binary:
        return json_part, None
    return json_part + b"".join(binary), len(json_part)
