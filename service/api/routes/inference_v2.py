"""The Open Inference Protocol (KServe v2, REST): health, metadata and inference per model.

Clients that speak it (Triton's ``tritonclient``, KServe's) call torchkiln as they would a
model server. A model's version is a job id; without one, the production version answers
(``parameters.alias`` in the request picks another alias). Errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import orjson
import torch
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from torchkiln.models import REGISTRY
from torchkiln.models.common.registry import ModelSpec, TensorSignature, TensorSpec
from torchkiln.service.api.deps import EngineDep, ModelCacheDep
from torchkiln.service.api.errors import ERROR_STATUS
from torchkiln.service.api.protocol_schemas import (
    InferResponsePublic,
    ModelMetadataPublic,
    ModelReadyPublic,
    ServerLivePublic,
    ServerMetadataPublic,
    ServerReadyPublic,
    answers,
)
from torchkiln.service.api.schemas import ERROR_RESPONSES
from torchkiln.service.api.serving.predictions import LoadedModel, ModelCache
from torchkiln.service.api.serving.tensor_codec import (
    HEADER_LENGTH,
    ProtocolError,
    decode_inputs,
    encode_output,
    parse_request,
    response_body,
    wanted_outputs,
)
from torchkiln.service.store import versions
from torchkiln.service.store.db import is_at_head, read_session
from torchkiln.service.store.errors import TorchkilnError
from torchkiln.service.store.patterns import ALIAS_PATTERN
from torchkiln.service.store.tables import MAX_ROW_ID

logger = logging.getLogger(__name__)


class ProtocolErrorPublic(BaseModel):
    error: str


V2_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{
        status: {"model": ProtocolErrorPublic, "description": description}
        for status, description in {
            400: "A request the protocol or the model's tensors do not allow.",
            404: "No such version (job).",
            409: "Nothing trained to answer yet, or no production version.",
            422: "The version is a job of another model.",
        }.items()
    },
    **{status: ERROR_RESPONSES[status] for status in (401, 413, 503)},
}
router = APIRouter(prefix="/v2", tags=["inference v2"], responses=V2_RESPONSES)
ALIAS = re.compile(ALIAS_PATTERN)
SERVER = {"name": "torchkiln", "version": "0.1.0", "extensions": ["binary_tensor_data"]}


def error(message: str, status: int = 400) -> Response:
    return Response(orjson.dumps({"error": message}), status, media_type="application/json")


def ok(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def protocol_errors(handler: Callable[[], Response]) -> Response:
    """Run ``handler``, answering domain and protocol errors in the protocol's shape."""
    try:
        return handler()
    except ProtocolError as problem:
        return error(str(problem))
    except TorchkilnError as problem:
        status = next((ERROR_STATUS[c] for c in type(problem).__mro__ if c in ERROR_STATUS), 400)
        return error(str(problem), status)


class UnknownTensorModel(ProtocolError):
    pass


def signature_of(name: str) -> tuple[ModelSpec, TensorSignature]:
    spec = REGISTRY.get(name)
    if spec is None or spec.tensors is None:
        raise UnknownTensorModel(f"unknown model {name!r}; models: {', '.join(sorted(REGISTRY))}")
    return spec, spec.tensors


def version_id(version: str | None) -> int | None:
    if version is None:
        return None
    if not version.isdigit() or not 1 <= int(version) <= MAX_ROW_ID:
        raise ProtocolError(f"version {version!r} is not a job id")
    return int(version)


def tensor_metadata(specs: tuple[TensorSpec, ...]) -> list[dict[str, Any]]:
    return [{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)} for s in specs]


@router.get("", responses=answers(ServerMetadataPublic))
async def v2_server_metadata() -> Response:
    return ok(SERVER)


@router.get("/health/live", responses=answers(ServerLivePublic))
async def v2_server_live() -> Response:
    return ok({"live": True})


@router.get("/health/ready", responses=answers(ServerReadyPublic))
def v2_server_ready(engine: EngineDep) -> Response:
    """Ready when the database answers at the newest migration (no worker needed to serve)."""
    try:
        if is_at_head(engine):
            return ok({"ready": True})
        return error("database schema is not at the newest migration")
    except Exception:  # any database failure means not ready, never a 500
        logger.warning("v2 readiness check failed", exc_info=True)
        return error("database unavailable")


def model_metadata(name: str, version: str | None, engine: EngineDep) -> Response:
    def build() -> Response:
        spec, signature = signature_of(name)
        with read_session(engine) as session:
            ids = [str(job.id) for job in versions.succeeded_jobs(session, spec.name)]
        wanted = version_id(version)
        if wanted is not None and str(wanted) not in ids:
            raise ProtocolError(f"model {name!r} has no version {version!r}")
        return ok(
            {
                "name": spec.name,
                "versions": ids,
                "platform": f"pytorch_{torch.__version__.split('+')[0]}",
                "inputs": tensor_metadata(signature.inputs),
                "outputs": tensor_metadata(signature.outputs),
            }
        )

    return protocol_errors(build)


@router.get("/models/{name}", responses=answers(ModelMetadataPublic))
def v2_model_metadata(name: str, engine: EngineDep) -> Response:
    """Inputs and outputs (names, datatypes, shapes; -1: any size) and the versions (job ids)."""
    return model_metadata(name, None, engine)


@router.get("/models/{name}/versions/{version}", responses=answers(ModelMetadataPublic))
def v2_model_version_metadata(name: str, version: str, engine: EngineDep) -> Response:
    return model_metadata(name, version, engine)


def model_ready(name: str, version: str | None, cache: ModelCache) -> Response:
    def check() -> Response:
        spec, _ = signature_of(name)
        cache.get(cache.resolve([spec.name], version_id(version)), count=False)
        return ok({"name": spec.name, "ready": True})

    return protocol_errors(check)


@router.get("/models/{name}/ready", responses=answers(ModelReadyPublic))
def v2_model_ready(name: str, cache: ModelCacheDep) -> Response:
    """200 when a version answers (the production one); 4xx naming why not."""
    return model_ready(name, None, cache)


@router.get("/models/{name}/versions/{version}/ready", responses=answers(ModelReadyPublic))
def v2_model_version_ready(name: str, version: str, cache: ModelCacheDep) -> Response:
    return model_ready(name, version, cache)


def infer(
    name: str, version: str | None, body: bytes, header: str | None, cache: ModelCache
) -> Response:
    """Decode, resolve the answering version, run the network and encode what was asked."""

    def run() -> Response:
        spec, signature = signature_of(name)
        request, binary = parse_request(body, header)
        alias = request.parameters.get("alias")
        if alias is not None and (
            version is not None or not isinstance(alias, str) or not ALIAS.fullmatch(alias)
        ):
            raise ProtocolError("parameters.alias must be an alias name, and not beside a version")
        source = cache.resolve([spec.name], version_id(version), alias)
        loaded = cache.get(source)
        # The version's own signature: a sequential job's depends on its data set.
        signature = loaded.spec.tensors or signature
        tensors = decode_inputs(request, binary, signature.inputs)
        outputs = run_network(loaded, signature, tensors)
        encoded = [
            encode_output(out, outputs[out.name], is_binary)
            for out, is_binary in wanted_outputs(request, signature.outputs)
        ]
        head: dict[str, Any] = {
            "model_name": spec.name,
            "model_version": str(source.job.id),
            "parameters": {"job_id": source.job.id, "alias": source.alias},
        }
        if request.id is not None:
            head["id"] = request.id
        content, json_length = response_body(head, encoded)
        if json_length is None:
            return Response(content, media_type="application/json")
        return Response(
            content,
            media_type="application/octet-stream",
            headers={HEADER_LENGTH: str(json_length)},
        )

    return protocol_errors(run)


def run_network(
    loaded: LoadedModel, signature: TensorSignature, tensors: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor | list[str]]:
    with torch.inference_mode():
        named: dict[str, torch.Tensor | list[str]] = {
            **signature.from_outputs(loaded.module(signature.to_batch(tensors)))
        }
        if signature.strings is not None:
            named.update(signature.strings(named))  # type: ignore[arg-type]
    return named


# With binary outputs: the JSON, then the tensors' bytes.
INFER_RESPONSES = answers(
    InferResponsePublic,
    {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
)


@router.post("/models/{name}/infer", responses=INFER_RESPONSES)
async def v2_infer(name: str, request: Request, cache: ModelCacheDep) -> Response:
    """Inference on the production version (or ``parameters.alias``), JSON or binary tensors."""
    body = await request.body()
    return await run_in_threadpool(
        infer, name, None, body, request.headers.get(HEADER_LENGTH), cache
    )


@router.post("/models/{name}/versions/{version}/infer", responses=INFER_RESPONSES)
async def v2_infer_version(
    name: str, version: str, request: Request, cache: ModelCacheDep
) -> Response:
    """Inference on one version (a job id)."""
    body = await request.body()
    header = request.headers.get(HEADER_LENGTH)
    return await run_in_threadpool(infer, name, version, body, header, cache)
