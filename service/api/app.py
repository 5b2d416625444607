"""The FastAPI application: routers, error handlers, migrations and the embedded pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from torchkiln.service.api.body_limits import MULTIPART_OVERHEAD_BYTES, BodyLimit, KeyBeforeBody
from torchkiln.service.api.deps import require_api_key, require_plain_path_ids
from torchkiln.service.api.direct_routes import DirectRoute
from torchkiln.service.api.errors import add_error_handlers
from torchkiln.service.api.openapi_contract import state_the_rules
from torchkiln.service.api.prometheus import PredictTimer, make_telemetry
from torchkiln.service.api.routes import (
    datasets,
    events,
    health,
    inference_v2,
    jobs,
    logs,
    models,
    predict,
    prometheus,
    versions,
    worker_processes,
)
from torchkiln.service.api.routes.compare import router as compare_router
from torchkiln.service.api.routes.model_designs import jobs_router as job_designs_router
from torchkiln.service.api.routes.model_designs import router as model_designs_router
from torchkiln.service.api.routes.sweeps import router as sweeps_router
from torchkiln.service.api.routes.web import mount_web
from torchkiln.service.api.schemas import ERROR_RESPONSES
from torchkiln.service.api.serving.batching import batching_policy
from torchkiln.service.api.serving.predictions import ModelCache
from torchkiln.service.api.serving.warmup import warm_up
from torchkiln.service.store.dataset_upload import remove_stale_uploads
from torchkiln.service.store.db import make_engine, upgrade_database
from torchkiln.service.store.settings import Settings


def operation_id(route: APIRoute) -> str:
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for ``settings`` (default: from the environment). Training runs elsewhere:
    ``torchkiln serve`` starts the worker pool beside the HTTP processes."""
    settings = settings if settings is not None else Settings()
    engine = make_engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(upgrade_database, engine)
        await run_in_threadpool(remove_stale_uploads, settings.datasets_dir)
        # Predictions are tiny batches: extra intra-op threads only add hand-off latency
        # and compete with the other HTTP processes for cores.
        torch.set_num_threads(settings.predict_threads)
        await warm_up(app, app.state.model_cache)
        try:
            yield
        finally:
            engine.dispose()

    # The docs pages' Swagger UI and ReDoc assets come from fastapi-offline's package, served
    # by the app itself: /docs and /redoc work without internet.
    app = FastAPIOffline(
        title="torchkiln",
        summary="Train and serve the classic PyTorch models over REST.",
        version="0.1.0",
        lifespan=lifespan,
        # Short operation ids (``list_versions``, not ``list_versions_models__model__versions_get``)
        # so generated clients get readable method names; route names are unique.
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.telemetry = make_telemetry(engine)
    app.state.artifact_store = settings.artifact_store()
    app.state.model_cache = ModelCache(
        engine,
        app.state.artifact_store,
        batching=lambda spec: batching_policy(spec, settings),
        observe_batch=app.state.telemetry.predict.observe_batch,
    )
    protected = [Depends(require_api_key), Depends(require_plain_path_ids)]
    app.include_router(health.router)
    # compare first: /jobs/{job_id} in the jobs router would otherwise take /jobs/compare;
    # model designs (/models/{name}/summary) before the models router, likewise.
    for router in (compare_router, sweeps_router, model_designs_router, job_designs_router):
        app.include_router(router, dependencies=protected, responses=ERROR_RESPONSES)
    routers = (jobs.router, events.router, logs.router, models.router, predict.router)
    for router in (*routers, datasets.router, worker_processes.router, prometheus.router):
        app.include_router(router, dependencies=protected, responses=ERROR_RESPONSES)
    app.include_router(versions.router, dependencies=protected, responses=ERROR_RESPONSES)
    # Its errors are the protocol's {"error": ...}, not ERROR_RESPONSES' {"detail": ...}.
    app.include_router(inference_v2.router, dependencies=protected)
    mount_web(app)
    # First in the walk: the common upload predictions skip it (direct_routes.py).
    for route in predict.upload_routes():
        app.router.routes.insert(0, DirectRoute(route, settings, app.state.model_cache))
    app.add_middleware(
        BodyLimit,
        json_limit=settings.max_body_bytes,
        upload_limit=settings.max_upload_bytes,
        batch_limit=settings.max_batch_upload_bytes,
        upload_paths=predict.upload_paths(),
        # The file part itself is held to max_dataset_bytes as it streams (413 either way).
        path_limits={"/datasets": settings.max_dataset_bytes + MULTIPART_OVERHEAD_BYTES},
    )
    if settings.api_key is not None:
        # Outside BodyLimit: authentication comes before any limit or byte of the body.
        app.add_middleware(KeyBeforeBody, api_key=settings.api_key.get_secret_value())
    # Outermost, so rejected uploads (413) are timed too.
    app.add_middleware(
        PredictTimer,
        telemetry=app.state.telemetry,
        cache=app.state.model_cache,
        routes={route.path for route in predict.router.routes},  # type: ignore[attr-defined]
    )
    add_error_handlers(app)
    app.openapi = state_the_rules(  # type: ignore[method-assign]
        app.openapi, is_key_required=settings.api_key is not None
    )
    return app
