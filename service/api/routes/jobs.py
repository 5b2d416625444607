"""Job routes: submit, list, read, label (PATCH), cancel, and the metric history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from torchkiln.models import REGISTRY
from torchkiln.service.api.deps import EngineDep, ReadSessionDep, SettingsDep
from torchkiln.service.api.routes.model_designs import has_summary
from torchkiln.service.api.schemas import (
    JobCreate,
    JobLinks,
    JobPublic,
    JobsPublic,
    JobUpdate,
    MetricsPublic,
    WorkerPublic,
)
from torchkiln.service.store import (
    datasets,
    jobs,
    metric_history,
    queue_estimates,
    versions,
    worker_processes,
)
from torchkiln.service.store.db import read_session, write_session
from torchkiln.service.store.init_sources import require_init_sources
from torchkiln.service.store.states import TERMINAL, JobState, stop_kind
from torchkiln.service.store.tables import MAX_ROW_ID, Job, utcnow

router = APIRouter(prefix="/jobs", tags=["jobs"])


def job_public(
    job: Job,
    queue_position: int | None = None,
    disk_bytes: int = 0,
    waiting_reason: str | None = None,
    queue_estimate_s: float | None = None,
) -> JobPublic:
    worker = None
    if job.worker_host is not None and job.worker_pid is not None:
        worker = WorkerPublic(host=job.worker_host, pid=job.worker_pid)
    return JobPublic(
        **job.model_dump(exclude={"worker_host", "worker_pid", "lease_expires_at"}),
        worker=worker,
        queue_position=queue_position,
        disk_bytes=disk_bytes,
        waiting_reason=waiting_reason,
        queue_estimate_s=queue_estimate_s,
        duration_s=_duration_s(job.started_at, job.finished_at, job.status),
        stop_kind=stop_kind(job.stop_reason),
        links=JobLinks(summary=f"/jobs/{job.id}/summary" if has_summary(job.model) else None),
    )


def _duration_s(started: datetime | None, finished: datetime | None, state: str) -> float | None:
    if started is None:
        return None
    end = finished if finished is not None else (utcnow() if state not in TERMINAL else started)
    return round((end - started).total_seconds(), 3)


def validate_params(
    spec_name: str, params: dict[str, Any], lookup: datasets.Lookup | None = None
) -> dict[str, Any]:
    """The model's options with defaults filled in; 422 naming each bad field otherwise.

    ``lookup`` resolves dataset ids (``datasets.lookup_in``): option models that name a
    dataset record its id, name, sha256 and schema as the job's lineage.
    """
    spec = REGISTRY.get(spec_name)
    if spec is None:
        raise RequestValidationError(
            [
                {
                    "type": "unknown_model",
                    "loc": ("body", "model"),
                    "msg": f"unknown model; choose one of: {', '.join(sorted(REGISTRY))}",
                    "input": spec_name,
                }
            ]
        )
    try:
        context = {"dataset_lookup": lookup} if lookup is not None else None
        return spec.parse_options(params, strict=True, context=context).model_dump(mode="json")
    except ValidationError as error:
        raise RequestValidationError(
            [
                {**e, "loc": ("body", "params", *e["loc"])}
                for e in error.errors(include_url=False, include_context=False)
            ]
        ) from None


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobPublic)
def submit_job(body: JobCreate, engine: EngineDep, settings: SettingsDep) -> JobPublic:
    """Queue a training job. Its params are checked against the model's option schema."""
    with read_session(engine) as session:
        params = validate_params(body.model, body.params, datasets.lookup_in(session))
    # Writes open their session here, not as a dependency: SQLite's write lock is then held
    # for these statements alone, not across the thread hop to a dependency's commit.
    with write_session(engine) as session:
        require_init_sources(session, model=body.model, params=[params])
        job = jobs.enqueue_job(
            session=session,
            model=body.model,
            params=params,
            device=body.device,
            priority=body.priority,
            max_attempts=settings.max_attempts,
            name=body.name,
            tags=body.tags,
            note=body.note,
            promote=body.promote.model_dump() if body.promote is not None else None,
        )
        position = jobs.queue_positions(session, [job]).get(job.id)  # type: ignore[arg-type]
        reasons = worker_processes.waiting_reasons(session, [job], settings.lease_s)
    return job_public(job, position, waiting_reason=reasons.get(job.id))  # type: ignore[arg-type]


@router.get("", response_model=JobsPublic)
def list_jobs(
    session: ReadSessionDep,
    settings: SettingsDep,
    status: JobState | None = None,
    model: str | None = None,
    tag: Annotated[str | None, Query(max_length=32, description="Jobs with this tag.")] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in the name, note or model.")
    ] = None,
    sort: Annotated[
        Literal[jobs.SORTS],  # type: ignore[valid-type]
        Query(description="A column, descending with a leading -."),
    ] = "-id",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
    include: Annotated[
        Literal["data"] | None,
        Query(description="data: keep each job's inline training points in its params."),
    ] = None,
) -> JobsPublic:
    """Jobs newest first (or by ``sort``), optionally only one status, model or tag, or
    matching a text search; ``params.data`` (inline training points) is left out unless
    ``include=data``."""
    page, count = jobs.list_jobs(
        session,
        status=status,
        model=model,
        tag=tag,
        q=q,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    positions = jobs.queue_positions(session, page)
    reasons = worker_processes.waiting_reasons(session, page, settings.lease_s)
    estimates = queue_estimates.queue_estimates(session, page, settings.lease_s)
    sizes = versions.disk_bytes(session, [j.id for j in page])  # type: ignore[misc]
    data = [
        job_public(
            j,
            positions.get(j.id),  # type: ignore[arg-type]
            sizes.get(j.id, 0),  # type: ignore[arg-type]
            reasons.get(j.id),  # type: ignore[arg-type]
            estimates.get(j.id),  # type: ignore[arg-type]
        )
        for j in page
    ]
    if include != "data":
        # A page of jobs with 100k inline points each would run to tens of megabytes.
        for public in data:
            public.params = {k: v for k, v in public.params.items() if k != "data"}
    return JobsPublic(data=data, count=count)


@router.get("/{job_id}", response_model=JobPublic)
def read_job(job_id: int, session: ReadSessionDep, settings: SettingsDep) -> JobPublic:
    job = jobs.get_job(session, job_id)
    size = versions.disk_bytes(session, [job_id]).get(job_id, 0)
    reason = worker_processes.waiting_reasons(session, [job], settings.lease_s).get(job_id)
    estimate = queue_estimates.queue_estimates(session, [job], settings.lease_s).get(job_id)
    position = jobs.queue_positions(session, [job]).get(job_id)
    return job_public(job, position, size, reason, estimate)


@router.patch("/{job_id}", response_model=JobPublic)
def update_job(job_id: int, body: JobUpdate, engine: EngineDep) -> JobPublic:
    """Set the job's name, tags or note (only the fields given), in any state."""
    with write_session(engine) as session:
        job = jobs.update_job(
            session=session, job_id=job_id, changes=body.model_dump(exclude_unset=True)
        )
        size = versions.disk_bytes(session, [job_id]).get(job_id, 0)
        position = jobs.queue_positions(session, [job]).get(job_id)
    return job_public(job, position, size)


@router.post("/{job_id}/cancel", response_model=JobPublic)
def cancel_job(job_id: int, engine: EngineDep) -> JobPublic:
    """A queued job is cancelled now; a running one stops at its next batch."""
    with write_session(engine) as session:
        job = jobs.cancel_job(session, job_id)
    return job_public(job)


@router.get("/{job_id}/metrics", response_model=MetricsPublic)
def read_metrics(
    job_id: int,
    session: ReadSessionDep,
    name: Annotated[list[str] | None, Query(description="Only these metrics.")] = None,
    since: Annotated[int | None, Query(ge=0, description="Cursor: points after this id.")] = None,
    limit: Annotated[int, Query(ge=1, le=200_000)] = 20_000,
    max_points: Annotated[
        int | None, Query(ge=4, le=100_000, description="Downsample to about this many a name.")
    ] = None,
) -> Response:
    """The per-epoch history. Poll with ``since``; plot long runs with ``max_points``."""
    jobs.get_job(session, job_id)
    points = metric_history.read_points(session, job_id, names=name, since=since, limit=limit)
    next_since = points[-1][0] if points else since
    is_truncated = len(points) == limit
    if max_points is not None:
        points = metric_history.downsample(points, max_points)
    body = {
        "job_id": job_id,
        "points": metric_history.points_json(points),
        "next_since": next_since,
        "is_truncated": is_truncated,
        "is_downsampled": max_points is not None,
    }
    # Encoded by orjson, not validated through the response model: for 10,000 points
    # pydantic + json.dumps cost several times the query. Values are finite or null.
    return Response(orjson.dumps(body), media_type="application/json")
