"""Server-Sent Events: a job's progress, one event per finished epoch, then its end state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from torchkiln.service.api.deps import EngineDep
from torchkiln.service.api.row_ids import parse_row_id
from torchkiln.service.store import jobs, metric_history
from torchkiln.service.store.db import read_session
from torchkiln.service.store.errors import InvalidInput
from torchkiln.service.store.metric_history import Point
from torchkiln.service.store.states import JobState

router = APIRouter(prefix="/jobs", tags=["jobs"])

POLL_INTERVAL_S = 0.5
PAGE_POINTS = 5_000
PING_S = 15


@dataclass(frozen=True)
class Snapshot:
    """One poll's worth of state, read in one short session."""

    status: JobState
    epoch: int
    epochs: int
    error: str | None
    points: list[Point]

    @property
    def is_terminal(self) -> bool:
        return self.status.is_finalized()


def ensure_job_exists(engine: Engine, job_id: int) -> None:
    """Raises JobNotFound (404) for an unknown job."""
    with read_session(engine) as session:
        jobs.get_job(session, job_id)


def read_snapshot(engine: Engine, job_id: int, since: int | None) -> Snapshot:
    """The job, then the points after ``since``: read in that order, every point of an
    epoch <= the job's epoch is already stored (the worker writes both in one transaction)."""
    with read_session(engine) as session:
        job = jobs.get_job(session, job_id)
        points = metric_history.read_points(
            session, job_id, names=None, since=since, limit=PAGE_POINTS
        )
        return Snapshot(job.status, job.epoch, job.epochs, job.error, list(points))


def complete_epochs(snapshot: Snapshot) -> list[list[Point]]:
    """Points grouped by epoch, up to the first epoch still being written."""
    groups: list[list[Point]] = []
    for point in snapshot.points:
        if not snapshot.is_terminal and point[1] > snapshot.epoch:
            break
        if groups and groups[-1][0][1] == point[1]:
            groups[-1].append(point)
        else:
            groups.append([point])
    # A full page may end mid-epoch; that epoch's tail comes with the next page.
    if len(snapshot.points) == PAGE_POINTS and groups and groups[-1][-1] == snapshot.points[-1]:
        groups.pop()
    return groups


def epoch_event(group: list[Point], snapshot: Snapshot) -> ServerSentEvent:
    data = {
        "epoch": group[0][1],
        "epochs": snapshot.epochs,
        "metrics": {p[2]: p[3] for p in group},
        "status": snapshot.status.value,
    }
    # The last point id is the cursor: a client reconnecting with it resumes after this epoch.
    return ServerSentEvent(orjson.dumps(data).decode(), event="epoch", id=str(group[-1][0]))


def state_event(name: str, snapshot: Snapshot) -> ServerSentEvent:
    data = {
        "status": snapshot.status.value,
        "epoch": snapshot.epoch,
        "epochs": snapshot.epochs,
        "error": snapshot.error,
    }
    return ServerSentEvent(orjson.dumps(data).decode(), event=name)


async def job_events(engine: Engine, job_id: int, since: int | None) -> AsyncIterator[Any]:
    """Poll the job and its metric points until it ends; the session closes between polls."""
    status: JobState | None = None
    while True:
        snapshot = await run_in_threadpool(read_snapshot, engine, job_id, since)
        groups = complete_epochs(snapshot)
        for group in groups:
            yield epoch_event(group, snapshot)
        if groups:
            since = groups[-1][-1][0]
        if snapshot.status != status:
            status = snapshot.status
            yield state_event("status", snapshot)
        has_more = len(snapshot.points) == PAGE_POINTS
        if snapshot.is_terminal and not has_more:
            yield state_event("end", snapshot)
            return
        if not has_more:
            await asyncio.sleep(POLL_INTERVAL_S)


def parse_cursor(last_event_id: str | None) -> int | None:
    """Event ids are metric point ids; none (or an empty one) starts from the beginning."""
    if last_event_id is None or not last_event_id.strip():
        return None
    cursor = parse_row_id(last_event_id.strip(), minimum=0)
    if cursor is None:
        raise InvalidInput(f"Last-Event-ID {last_event_id[:20]!r} is not an id this stream sent")
    return cursor


class EpochEventData(BaseModel):
    """An ``epoch`` event's data: one finished epoch's metrics (null where not finite)."""

    epoch: int
    epochs: int
    metrics: dict[str, float | None]
    status: JobState


class StateEventData(BaseModel):
    """A ``status`` event's data (at each state change), or the ``end`` event's (the last)."""

    status: JobState
    epoch: int
    epochs: int
    error: str | None


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    # Each event's data schema is added by openapi_contract (it needs the components).
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "Server-Sent Events: epoch, status, end.",
        }
    },
)
async def stream_job_events(
    job_id: int,
    engine: EngineDep,
    last_event_id: Annotated[str | None, Header(description="Resume after this event.")] = None,
) -> EventSourceResponse:
    """Server-Sent Events: ``epoch`` per finished epoch (id = cursor), ``status`` on each
    state change, then ``end`` with the final state, after which the stream closes."""
    # Checked before streaming starts, so an unknown job answers 404 JSON, not an empty stream.
    await run_in_threadpool(ensure_job_exists, engine, job_id)
    # Plain LF line ends: what curl -N users read, and what every SSE parser accepts.
    events = job_events(engine, job_id, parse_cursor(last_event_id))
    return EventSourceResponse(events, ping=PING_S, sep="\n")
