"""Liveness and readiness probes; never behind the API key."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.db import is_at_head
from service.deps import EngineDep
from service.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic)
def healthz() -> HealthPublic:
    """The process is up and serving."""
    return HealthPublic(status="ok")


@router.get("/readyz", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
def readyz(engine: EngineDep) -> JSONResponse:
    """The database answers and its schema is at the newest migration."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        ready = is_at_head(engine)
    except sa.exc.SQLAlchemyError:
        ready = False
    if not ready:
        return JSONResponse({"status": "database unreachable or not migrated"}, status_code=503)
    return JSONResponse({"status": "ready"})
