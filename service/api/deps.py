"""FastAPI dependencies, exported as Annotated aliases that routes declare in signatures."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from torchkiln.service.api.serving.predictions import ModelCache
from torchkiln.service.store.artifact_store import ArtifactStore
from torchkiln.service.store.db import read_session
from torchkiln.service.store.settings import Settings


# Async although they do no I/O: FastAPI runs sync dependencies in a thread pool, and that
# hop costs more than the rest of a cached prediction.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_artifact_store(request: Request) -> ArtifactStore:
    return request.app.state.artifact_store


async def get_model_cache(request: Request) -> ModelCache:
    return request.app.state.model_cache


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
StoreDep = Annotated[ArtifactStore, Depends(get_artifact_store)]
ModelCacheDep = Annotated[ModelCache, Depends(get_model_cache)]


def get_read_session(engine: EngineDep) -> Iterator[Session]:
    with read_session(engine) as session:
        yield session


# scope="function": the session closes when the handler returns, before the response is sent.
# Writes open write_session() in the handler instead: SQLite's write lock must be held for
# their statements alone, not across the thread hop to a dependency's exit.
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]

bearer_credentials = HTTPBearer(
    auto_error=False, description="Required when TORCHKILN_API_KEY is set."
)


async def require_api_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_credentials)],
) -> None:
    """401 unless the request carries ``Authorization: Bearer <TORCHKILN_API_KEY>``."""
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials is not None else b""
    # compare_digest takes the same time wherever the first difference is.
    if not secrets.compare_digest(given, expected):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong API key: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def require_plain_path_ids(request: Request) -> None:
    """422 for a path id that is not plain ASCII digits.

    Lax int parsing reads ``/jobs/1.0`` as job 1, so ``DELETE /jobs/1.0`` would delete it.
    """
    errors = [
        {
            "type": "int_parsing",
            "loc": ("path", name),
            "msg": "Input should be a whole number written in plain digits",
            "input": value,
        }
        for name, value in request.path_params.items()
        if name.endswith("_id") and not (value.isascii() and value.isdigit())
    ]
    if errors:
        raise RequestValidationError(errors)
