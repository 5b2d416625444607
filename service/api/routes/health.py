"""Liveness and readiness probes; never behind the API key."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from torchkiln.service.api.deps import EngineDep, SettingsDep
from torchkiln.service.api.schemas import HealthPublic
from torchkiln.service.store import worker_processes
from torchkiln.service.store.db import is_at_head, read_session

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic)
def healthz() -> HealthPublic:
    """The process is up and serving."""
    return HealthPublic(status="ok")


@router.get("/readyz", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
def readyz(engine: EngineDep, settings: SettingsDep) -> JSONResponse:
    """The database answers, its schema is at the newest migration, and a worker is alive."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        if not is_at_head(engine):
            return _not_ready("database schema is not at the newest migration")
        with read_session(engine) as session:
            live = worker_processes.count_live_workers(session, settings.lease_s)
    except sa.exc.SQLAlchemyError:
        return _not_ready("database unreachable")
    if live == 0:
        return _not_ready("no live worker: start one with `torchkiln worker`")
    return JSONResponse({"status": "ready"})


def _not_ready(reason: str) -> JSONResponse:
    return JSONResponse({"status": reason}, status_code=503)
