"""``GET /jobs/{id}/logs``: one job's log lines, as its worker wrote them (JSON lines)."""

from __future__ import annotations

import io
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query

from torchkiln.service.api.deps import ReadSessionDep, SettingsDep, StoreDep
from torchkiln.service.api.schemas import JobLogsPublic
from torchkiln.service.store import jobs
from torchkiln.service.store.artifact_store import ArtifactStore
from torchkiln.service.store.checkpoint_files import job_log_key, job_log_path

router = APIRouter(prefix="/jobs", tags=["jobs"])


def read_lines(
    path: Path, since: int, limit: int, store: ArtifactStore | None = None, key: str = ""
) -> list[dict[str, Any]]:
    """Complete lines ``since``..``since + limit``; a line still being written waits.

    ``path`` is this host's copy; without one, the copy in ``store`` at ``key`` (an object
    store holds the log of each attempt that ended, wherever it ran)."""
    try:
        with path.open("rb") as file:
            raw = list(islice(file, since, since + limit))
    except FileNotFoundError:
        if store is None or store.is_local:
            return []
        try:
            raw = list(islice(io.BytesIO(store.get_bytes(key)), since, since + limit))
        except FileNotFoundError:
            return []
    return [parse_line(line) for line in raw if line.endswith(b"\n")]


def parse_line(line: bytes) -> dict[str, Any]:
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        entry = None
    return (
        entry
        if isinstance(entry, dict)
        else {"message": line.decode(errors="replace").rstrip("\n")}
    )


@router.get("/{job_id}/logs", response_model=JobLogsPublic)
def read_job_logs(
    job_id: int,
    session: ReadSessionDep,
    settings: SettingsDep,
    store: StoreDep,
    since: Annotated[int, Query(ge=0, description="Skip this many lines (a cursor).")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1_000,
) -> JobLogsPublic:
    """The job's log lines from line ``since``; poll with ``next_since``. Empty until the
    job starts. Each line has time, level, logger, message, job_id, pid (and exception)."""
    jobs.get_job(session, job_id)
    local = job_log_path(settings.artifacts_dir, job_id)
    lines = read_lines(local, since, limit, store, job_log_key(job_id))
    return JobLogsPublic(job_id=job_id, lines=lines, next_since=since + len(lines))
