"""The FastAPI application: routers, error handlers, migrations and the embedded pool."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
import torch
from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from torchkiln.models.common.images import ImageRejected
from torchkiln.service.api.body_limits import BodyLimit
from torchkiln.service.api.deps import require_api_key
from torchkiln.service.api.prometheus import PredictTimer, make_telemetry
from torchkiln.service.api.routes import (
    events,
    health,
    jobs,
    logs,
    models,
    predict,
    prometheus,
    versions,
    worker_processes,
)
from torchkiln.service.api.routes.compare import router as compare_router
from torchkiln.service.api.routes.sweeps import router as sweeps_router
from torchkiln.service.api.routes.web import mount_web
from torchkiln.service.api.schemas import ERROR_RESPONSES
from torchkiln.service.api.serving.predictions import ModelCache
from torchkiln.service.api.serving.warmup import warm_up
from torchkiln.service.store import errors
from torchkiln.service.store.db import is_lock_error, make_engine, upgrade_database
from torchkiln.service.store.settings import Settings

logger = logging.getLogger(__name__)

# Looked up along the exception's MRO, like Starlette's own handlers.
ERROR_STATUS: dict[type[errors.TorchkilnError], int] = {
    errors.JobNotFound: 404,
    errors.UnknownModel: 404,
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
}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for ``settings`` (default: from the environment). Training runs elsewhere:
    ``torchkiln serve`` starts the worker pool beside the HTTP processes."""
    settings = settings if settings is not None else Settings()
    engine = make_engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(upgrade_database, engine)
        # Predictions are tiny batches: extra intra-op threads only add hand-off latency
        # and compete with the other HTTP processes for cores.
        torch.set_num_threads(settings.predict_threads)
        await warm_up(app, app.state.model_cache)
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="torchkiln",
        summary="Train and serve the classic PyTorch models over REST.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.model_cache = ModelCache(engine, settings.artifacts_dir)
    app.state.telemetry = make_telemetry(engine)
    protected = [Depends(require_api_key)]
    app.include_router(health.router)
    # compare first: /jobs/{job_id} in the jobs router would otherwise take /jobs/compare.
    for router in (compare_router, sweeps_router):
        app.include_router(router, dependencies=protected, responses=ERROR_RESPONSES)
    routers = (jobs.router, events.router, logs.router, models.router, predict.router)
    for router in (*routers, worker_processes.router, prometheus.router):
        app.include_router(router, dependencies=protected, responses=ERROR_RESPONSES)
    app.include_router(versions.router, dependencies=protected, responses=ERROR_RESPONSES)
    mount_web(app)
    app.add_middleware(
        BodyLimit,
        json_limit=settings.max_body_bytes,
        upload_limit=settings.max_upload_bytes,
        batch_limit=settings.max_batch_upload_bytes,
    )
    # Outermost, so rejected uploads (413) are timed too.
    app.add_middleware(
        PredictTimer,
        telemetry=app.state.telemetry,
        cache=app.state.model_cache,
        routes={route.path for route in predict.router.routes},  # type: ignore[attr-defined]
    )
    add_error_handlers(app)
    return app


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.TorchkilnError)
    async def domain_error(request: Request, error: errors.TorchkilnError) -> JSONResponse:
        status = next(
            (ERROR_STATUS[cls] for cls in type(error).__mro__ if cls in ERROR_STATUS), 400
        )
        headers = {"Retry-After": "1"} if status == 503 else None
        return JSONResponse({"detail": str(error)}, status_code=status, headers=headers)

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


def _printable(error: Any) -> dict[str, Any]:
    """A validation error as JSON can carry it: no NaN/inf, no echo of huge inputs."""
    printable = {k: v for k, v in dict(error).items() if k in ("type", "loc", "msg")}
    if "input" not in error:
        return printable
    value = error["input"]
    if isinstance(value, float) and not math.isfinite(value):
        printable["input"] = str(value)
    elif isinstance(value, str | int | float | bool) or value is None:
        printable["input"] = value if not isinstance(value, str) else value[:200]
    return printable
