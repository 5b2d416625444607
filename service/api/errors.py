"""Domain errors and validation failures as HTTP answers: one status per error, one place."""

from __future__ import annotations

import logging
import math
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from torchkiln.models.common.images import ImageRejected
from torchkiln.service.store import errors
from torchkiln.service.store.artifact_store import CorruptArtifact
from torchkiln.service.store.db import is_lock_error

logger = logging.getLogger(__name__)

# Looked up along the exception's MRO, like Starlette's own handlers.
ERROR_STATUS: dict[type[errors.TorchkilnError], int] = {
    errors.JobNotFound: 404,
    errors.VersionNotFound: 404,
    errors.PickDisagrees: 409,
    errors.UnknownModel: 404,
    errors.NoSummary: 404,
    errors.InvalidInput: 422,
    errors.NoCheckpoint: 409,
    errors.JobNotCancellable: 409,
    errors.JobInUse: 409,
    errors.AliasNotFound: 404,
    errors.UnsupportedBody: 415,
    errors.DatabaseBusy: 503,
    errors.SweepNotFound: 404,
    errors.NoSweepWinner: 409,
    errors.SweepNotCancellable: 409,
    errors.ExportUnavailable: 501,
    errors.DatasetNotFound: 404,
    errors.DatasetInUse: 409,
    errors.DatasetTooLarge: 413,
    errors.DatasetNotStored: 503,
}


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.TorchkilnError)
    async def domain_error(request: Request, error: errors.TorchkilnError) -> JSONResponse:
        status = next(
            (ERROR_STATUS[cls] for cls in type(error).__mro__ if cls in ERROR_STATUS), 400
        )
        headers = {"Retry-After": "1"} if status == 503 else None
        detail = _encodable(str(error))
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(ImageRejected)
    async def image_rejected(request: Request, error: ImageRejected) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code != 405:
            return await http_exception_handler(request, error)
        # Starlette's 405 names the methods of the first route on the path only; GET and
        # POST /jobs are two routes, so collect the methods of every route on it.
        methods = {
            method
            for route in request.app.routes
            if route.matches(request.scope)[0] == Match.PARTIAL
            for method in getattr(route, "methods", None) or ()
        }
        allow = {"Allow": ", ".join(sorted(methods))}
        return JSONResponse({"detail": error.detail}, status_code=405, headers=allow)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": [_printable(e) for e in error.errors()]}, status_code=422)

    @app.exception_handler(sa.exc.OperationalError)
    async def database_error(request: Request, error: sa.exc.OperationalError) -> JSONResponse:
        if is_lock_error(error):
            return await domain_error(request, errors.DatabaseBusy())
        logger.exception("database error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal database error"}, status_code=500)

    @app.exception_handler(CorruptArtifact)
    async def corrupt_artifact(request: Request, error: CorruptArtifact) -> JSONResponse:
        # Not the client's doing: the stored bytes changed after they were recorded.
        logger.error("%s %s: %s", request.method, request.url.path, error)
        return JSONResponse({"detail": str(error)}, status_code=500)


def _printable(error: Any) -> dict[str, Any]:
    """A validation error as JSON can carry it: no NaN/inf, no lone surrogate, no echo of
    huge inputs."""
    printable = {k: _encodable(v) for k, v in dict(error).items() if k in ("type", "loc", "msg")}
    if "input" not in error:
        return printable
    value = error["input"]
    if isinstance(value, float) and not math.isfinite(value):
        printable["input"] = str(value)
    elif isinstance(value, str | int | float | bool) or value is None:
        printable["input"] = _encodable(value if not isinstance(value, str) else value[:200])
    return printable


def _encodable(value: Any) -> Any:
    """Strings (also inside a ``loc`` tuple) with what UTF-8 cannot carry, a lone surrogate
    from a JSON escape such as ``"\\ud800"``, written as its escape."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, tuple | list):
        return [_encodable(part) for part in value]
    return value
