"""Prediction routes, generated from the catalogue.

Every model gets ``POST /predict/{name}`` with its own input schema. Models that read images
also take uploads (multipart field ``file``, repeatable, or a raw ``image/*`` body), and each
tag they share (``mnist``, ``cifar10``) gets a route that answers from the production version
of those models whose alias moved last. No ``from __future__ import annotations``: FastAPI
reads the body type of each generated endpoint from its live annotation.
"""

import csv
import io
from typing import Annotated, Any

import orjson
import torch
from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from torchkiln.models import REGISTRY
from torchkiln.models.common.images import ImageLimits, request_pixels
from torchkiln.models.common.registry import ModelSpec
from torchkiln.service.api.deps import ModelCacheDep
from torchkiln.service.api.multipart import split_files
from torchkiln.service.api.schemas import prediction_responses
from torchkiln.service.api.serving.predictions import answer
from torchkiln.service.store.errors import InvalidInput, UnsupportedBody
from torchkiln.service.store.patterns import ALIAS_PATTERN
from torchkiln.service.store.tables import MAX_ROW_ID

router = APIRouter(prefix="/predict", tags=["predict"])

JobIdQuery = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_ROW_ID,
        description=(
            "Answer from this job, not the production one. With alias too: 409 unless the"
            " alias names this job."
        ),
    ),
]
AliasQuery = Annotated[
    str | None,
    Query(
        pattern=ALIAS_PATTERN,
        description="Answer from the job this alias names; with job_id, 409 unless it is that job.",
    ),
]
MAX_FILES = 256
# Decoding a big photo takes milliseconds: do it off the event loop; small ones inline.
# Both bounds count: a few KiB of PNG can declare millions of pixels.
INLINE_DECODE_BYTES = 64 * 1024
INLINE_DECODE_PIXELS = 512 * 512
# The routes that take image uploads (the table models' CSV route is not one of them).
IMAGE_ROUTES: set[str] = set()


def json_response(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def add_json_route(spec: ModelSpec) -> None:
    inputs_model = spec.inputs

    async def predict_model(
        inputs: inputs_model,  # type: ignore[valid-type]
        cache: ModelCacheDep,
        job_id: JobIdQuery = None,
        alias: AliasQuery = None,
    ) -> Response:
        # Its lookup and preprocessing in a worker thread, as a plain def route ran them.
        answered = await answer(
            cache, [spec.name], (job_id, alias), lambda s: s.preprocess(inputs), is_slow=True
        )
        return json_response(answered)

    predict_model.__doc__ = f"{spec.summary} Answers from the production version, job_id or alias."
    router.add_api_route(
        f"/{spec.name}",
        predict_model,
        methods=["POST"],
        name=f"predict_{spec.name}",
        responses=prediction_responses(spec.name, [spec]),
    )


def table_body_schema(inputs: type[BaseModel]) -> dict[str, Any]:
    csv = {"type": "string", "format": "binary"}
    return {
        "required": True,
        "content": {
            "application/json": {"schema": inputs.model_json_schema()},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": csv}, "required": ["file"]}
            },
            "text/csv": {"schema": {"type": "string"}},
        },
    }


def csv_response(body: dict[str, Any]) -> Response:
    """The predictions as CSV rows: scalar fields as columns, a dict's items as ``key_item``."""
    rows = []
    for prediction in body["predictions"]:
        row: dict[str, Any] = {}
        for key, value in prediction.items():
            if isinstance(value, dict):
                row.update({f"{key}_{k}": v for k, v in value.items()})
            elif not isinstance(value, list):
                row[key] = value
        rows.append(row)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    return Response(out.getvalue(), media_type="text/csv")


def add_table_route(spec: ModelSpec) -> None:
    """``POST /predict/{name}`` for a table model: JSON rows, or a CSV file to score whole
    (multipart ``file`` or a ``text/csv`` body), answered as JSON or, for ``Accept:
    text/csv``, as CSV."""
    inputs_model, read_table = spec.inputs, spec.table_upload
    assert read_table is not None

    async def predict_table(
        request: Request,
        cache: ModelCacheDep,
        job_id: JobIdQuery = None,
        alias: AliasQuery = None,
    ) -> Response:
        content_type = request.headers.get("content-type", "")
        body = await request.body()
        table: bytes | None = None
        inputs: BaseModel | None = None
        if content_type.startswith("multipart/form-data"):
            files = split_files(body, content_type, 1)
            if files is None:
                async with request.form(max_files=1, max_fields=1) as form:
                    upload = form.get("file")
                    files = [await upload.read()] if isinstance(upload, UploadFile) else []
            if not files:
                raise InvalidInput("send the CSV file as a multipart file field named 'file'")
            table = files[0]
        elif content_type.startswith(("text/csv", "text/tab-separated-values", "text/plain")):
            table = body
        elif content_type and "json" not in content_type:
            raise UnsupportedBody(
                f"unsupported content type {content_type.split(';')[0]!r}: send JSON rows, a "
                "text/csv body, or multipart/form-data with a 'file' field"
            )
        else:
            inputs = validated(inputs_model, body)

        def batch_of(served: ModelSpec) -> torch.Tensor:
            # The file is read once the answering job is known (in a worker thread).
            rows = inputs if table is None else read_table(table, content_type)
            return served.preprocess(rows)

        answered = await answer(cache, [spec.name], (job_id, alias), batch_of, is_slow=True)
        if "text/csv" in request.headers.get("accept", ""):
            return csv_response(answered)
        return json_response(answered)

    predict_table.__doc__ = (
        f"{spec.summary} Send JSON rows, or a CSV file (multipart field `file`, or a text/csv "
        "body) to score every row; `Accept: text/csv` answers as CSV. Answers from the "
        "production version, job_id or alias."
    )
    router.add_api_route(
        f"/{spec.name}",
        predict_table,
        methods=["POST"],
        name=f"predict_{spec.name}",
        openapi_extra={"requestBody": table_body_schema(inputs_model)},
        responses=prediction_responses(spec.name, [spec]),
    )


def validated(inputs_model: type[BaseModel], body: bytes) -> BaseModel:
    """A JSON body as ``inputs_model``; a 422 in FastAPI's own shape otherwise."""
    try:
        return inputs_model.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(
            [
                {**e, "loc": ("body", *e["loc"])}
                for e in error.errors(include_url=False, include_context=False)
            ]
        ) from None


def upload_body_schema(inputs: type[BaseModel]) -> dict[str, Any]:
    files = {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1}
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": files}, "required": ["file"]}
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": inputs.model_json_schema()},
        },
    }


async def read_images(request: Request, content_type: str) -> list[bytes]:
    body = await request.body()
    if content_type.startswith("image/"):
        return [body]
    images = split_files(body, content_type, MAX_FILES)
    if images is None:  # any other shape of form: Starlette's parser, and its errors
        async with request.form(max_files=MAX_FILES, max_fields=MAX_FILES) as form:
            files = [item for item in form.getlist("file") if isinstance(item, UploadFile)]
            images = [await item.read() for item in files]
    if not images:
        raise InvalidInput("send the image as a multipart file field named 'file'")
    return images


def decode_all(
    spec: ModelSpec, images: list[bytes], limits: ImageLimits, *, is_checked: bool = False
) -> torch.Tensor:
    """The images as one batch; ``is_checked``: ``request_pixels`` already passed them."""
    assert spec.decode_upload is not None
    if not is_checked:
        request_pixels(images, limits)  # the whole request's budget before any image decodes
    return torch.cat([spec.decode_upload(data, limits) for data in images])


def add_upload_route(path_name: str, specs: list[ModelSpec], summary: str) -> None:
    names = [spec.name for spec in specs]
    inputs_model = specs[0].inputs

    async def predict_images(
        request: Request,
        cache: ModelCacheDep,
        job_id: JobIdQuery = None,
        alias: AliasQuery = None,
    ) -> Response:
        pick = (job_id, alias)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("multipart/form-data", "image/")):
            images = await read_images(request, content_type)
            settings = request.app.state.settings
            limits = ImageLimits(
                settings.max_upload_bytes, settings.max_image_pixels, settings.max_request_pixels
            )
            is_big = sum(map(len, images)) > INLINE_DECODE_BYTES
            # Headers of a small body are cheap to read here; they tell the decoding cost.
            is_slow = is_big or request_pixels(images, limits) > INLINE_DECODE_PIXELS
            return json_response(
                await answer(
                    cache,
                    names,
                    pick,
                    lambda s: decode_all(s, images, limits, is_checked=not is_big),
                    is_slow=is_slow,
                )
            )
        if content_type and "json" not in content_type:
            raise UnsupportedBody(
                f"unsupported content type {content_type.split(';')[0]!r}: send multipart/"
                "form-data with a 'file' field, an image/* body, or application/json pixels"
            )
        inputs = validated(inputs_model, await request.body())
        return json_response(await answer(cache, names, pick, lambda s: s.preprocess(inputs)))

    predict_images.__doc__ = (
        f"{summary} Send image files (multipart field `file`, repeat it for a batch, or a raw "
        "image/* body: PNG, JPEG, BMP, GIF) or JSON pixels. Answers from the production "
        "version, job_id or alias."
    )
    IMAGE_ROUTES.add(f"predict_{path_name}")
    router.add_api_route(
        f"/{path_name}",
        predict_images,
        methods=["POST"],
        name=f"predict_{path_name}",
        openapi_extra={"requestBody": upload_body_schema(inputs_model)},
        responses=prediction_responses(path_name, specs),
    )


def upload_routes() -> list[APIRoute]:
    """The routes that take image uploads, and with them the upload body limits."""
    return [route for route in router.routes if getattr(route, "name", None) in IMAGE_ROUTES]  # type: ignore[misc]


def upload_paths() -> set[str]:
    return {route.path for route in upload_routes()}


def add_routes() -> None:
    families: dict[str, list[ModelSpec]] = {}
    for spec in REGISTRY.values():
        if spec.table_upload is not None:
            add_table_route(spec)
            continue
        if spec.decode_upload is None:
            add_json_route(spec)
            continue
        add_upload_route(spec.name, [spec], spec.summary)
        for tag in spec.tags:
            families.setdefault(tag, []).append(spec)
    for tag, specs in families.items():
        if tag not in REGISTRY:
            add_upload_route(
                tag, specs, f"The production version of {', '.join(s.name for s in specs)}."
            )


add_routes()
