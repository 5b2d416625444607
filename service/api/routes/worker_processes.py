"""The worker processes that train jobs, on this host or others, as the worker table has them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from torchkiln.service.api.deps import ReadSessionDep, SettingsDep
from torchkiln.service.api.schemas import WorkerProcessPublic, WorkersPublic
from torchkiln.service.store import worker_processes
from torchkiln.service.store.tables import MAX_ROW_ID

router = APIRouter(prefix="/workers", tags=["workers"])


@router.get("", response_model=WorkersPublic)
def list_workers(
    session: ReadSessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
) -> WorkersPublic:
    """Worker processes, most recently heard from first; stopped and lost ones included."""
    lease_s = settings.lease_s
    page, count = worker_processes.list_workers(session, limit=limit, offset=offset)
    live = worker_processes.count_live_workers(session, lease_s)
    data = [
        WorkerProcessPublic(**w.model_dump(), is_live=worker_processes.is_live(w, lease_s))
        for w in page
    ]
    return WorkersPublic(data=data, count=count, live=live)
