"""Every job state transition. Workers and routes call these; nothing else edits a job."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from torchkiln.service.store.db import read_session, write_session
from torchkiln.service.store.errors import JobNotCancellable, JobNotFound
from torchkiln.service.store.states import TERMINAL, JobState
from torchkiln.service.store.tables import MAX_ROW_ID, Job, utcnow
from torchkiln.service.store.wakeups import announce_work


@dataclass(frozen=True)
class WorkerIdentity:
    """Who runs a job: shown on the job, and part of the claim."""

    host: str
    pid: int

    @classmethod
    def current(cls, pid: int) -> WorkerIdentity:
        return cls(host=socket.gethostname(), pid=pid)


@dataclass(frozen=True)
class Lease:
    """A claimed job's fence: writes from a worker whose lease moved on are ignored."""

    job_id: int
    attempt: int


def enqueue_job(
    *,
    session: Session,
    model: str,
    params: dict[str, Any],
    device: str,
    priority: int,
    max_attempts: int,
    name: str | None = None,
    tags: list[str] | None = None,
    note: str | None = None,
    promote: dict[str, Any] | None = None,
) -> Job:
    job = Job(
        model=model,
        params=params,
        device_requested=device,
        priority=priority,
        max_attempts=max_attempts,
        epochs=int(params["epochs"]),
        seed=int(params["seed"]),
        name=name,
        tags=list(tags or []),
        note=note,
        promote=promote,
        gang_nodes=int((params.get("distributed") or {}).get("nodes", 1)),
    )
    session.add(job)
    session.flush()
    announce_work(session)
    return job


def get_job(session: Session, job_id: int) -> Job:
    if not 0 < job_id <= MAX_ROW_ID:
        raise JobNotFound(job_id)
    job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


# ``sort`` values of list_jobs: a column, descending with a leading ``-``.
SORT_COLUMNS = {
    "id": Job.id,
    "created_at": Job.created_at,
    "finished_at": Job.finished_at,
    "name": Job.name,
    "model": Job.model,
    "status": Job.status,
    "priority": Job.priority,
    "epoch": Job.epoch,
    "best_value": Job.best_value,
}
SORTS = tuple(f"{sign}{name}" for name in SORT_COLUMNS for sign in ("", "-"))


def _like_escaped(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_jobs(
    session: Session,
    *,
    status: JobState | None,
    model: str | None,
    limit: int,
    offset: int,
    tag: str | None = None,
    q: str | None = None,
    sort: str = "-id",
) -> tuple[list[Job], int]:
    """A page of jobs (newest first unless ``sort`` says otherwise), and the count of all
    that match. ``tag``: jobs carrying it; ``q``: a case-blind substring of name, note or
    model."""
    query = select(Job)
    if status is not None:
        query = query.where(Job.status == status)
    if model is not None:
        query = query.where(Job.model == model)
    if tag is not None:
        # Tags are a JSON list on both databases; its text holds each tag in double quotes
        # (tags cannot contain one), so a quoted LIKE matches whole tags only.
        pattern = f'%"{_like_escaped(tag)}"%'
        query = query.where(sa.cast(Job.tags, sa.Text).like(pattern, escape="\\"))
    if q:
        pattern = f"%{_like_escaped(q.lower())}%"
        fields = (Job.name, Job.note, Job.model)
        query = query.where(
            sa.or_(*(func.lower(col(f)).like(pattern, escape="\\") for f in fields))
        )
    count = session.exec(select(func.count()).select_from(query.subquery())).one()
    column = col(SORT_COLUMNS[sort.removeprefix("-")])
    order = column.desc() if sort.startswith("-") else column.asc()
    # Jobs without the value (no name, no best yet) come last either way; id breaks ties.
    ordered = query.order_by(order.nulls_last(), col(Job.id).desc())
    page = session.exec(ordered.offset(offset).limit(limit)).all()
    return list(page), count


def update_job(*, session: Session, job_id: int, changes: dict[str, Any]) -> Job:
    """Set a job's ``name``, ``tags`` or ``note`` (the keys given), whatever its state."""
    unknown = set(changes) - {"name", "tags", "note"}
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    job = get_job(session, job_id)
    for key, value in changes.items():
        setattr(job, key, list(value or []) if key == "tags" else value)
    session.add(job)
    session.flush()
    return job


def queue_order() -> tuple[Any, ...]:
    """The order workers claim queued jobs in: higher priority first, then oldest."""
    return (col(Job.priority).desc(), col(Job.created_at), col(Job.id))


def queue_positions(session: Session, jobs: list[Job]) -> dict[int, int]:
    """1-based place in the queue of each queued job in ``jobs``."""
    wanted = {job.id for job in jobs if job.status == JobState.QUEUED}
    if not wanted:
        return {}
    if len(wanted) == 1:
        job = next(j for j in jobs if j.id in wanted)
        ahead = session.exec(
            select(func.count()).where(
                Job.status == JobState.QUEUED,
                sa.or_(
                    Job.priority > job.priority,
                    sa.and_(Job.priority == job.priority, col(Job.id) < job.id),
                ),
            )
        ).one()
        return {job.id: ahead + 1}
    ordered = session.exec(
        select(Job.id).where(Job.status == JobState.QUEUED).order_by(*queue_order())
    ).all()
    return {job_id: i + 1 for i, job_id in enumerate(ordered) if job_id in wanted}


def cancel_job(session: Session, job_id: int) -> Job:
    """Cancel a queued job now; ask a running one to stop (its worker reads the flag)."""
    job = get_job(session, job_id)
    if job.status in TERMINAL:
        raise JobNotCancellable(job_id, job.status)
    if job.status == JobState.QUEUED:
        job.status = JobState.CANCELLED
        job.finished_at = utcnow()
    elif not job.is_cancel_requested:
        job.is_cancel_requested = True
        job.cancel_requested_at = utcnow()
    session.add(job)
    return job


def claim_next_job(
    engine: Engine, *, worker: WorkerIdentity, devices: list[str], lease_s: float
) -> Job | None:
    """Atomically take the best queued job this worker can run, or None.

    One UPDATE … RETURNING whose subquery picks the job: on SQLite inside BEGIN IMMEDIATE
    (one writer at a time), on PostgreSQL with FOR UPDATE SKIP LOCKED, so no job runs twice.
    """
    now = utcnow()
    candidate = (
        select(Job.id)
        .where(Job.status == JobState.QUEUED, col(Job.device_requested).in_(devices))
        .order_by(*queue_order())
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = (
        sa.update(Job)
        .where(col(Job.id) == candidate, Job.status == JobState.QUEUED)
        .values(
            status=JobState.RUNNING,
            attempts=Job.attempts + 1,
            worker_host=worker.host,
            worker_pid=worker.pid,
            started_at=sa.func.coalesce(Job.started_at, now),
            heartbeat_at=now,
            lease_expires_at=now + timedelta(seconds=lease_s),
            error=None,
            # A gang job's claimer is its first node; it publishes the endpoint (gangs.py).
            gang_joined=1,
            gang_endpoint=None,
        )
        .returning(Job)
    )
    with write_session(engine) as session:
        row = session.exec(statement).first()
        return row[0] if row is not None else None


def fenced_update(lease: Lease) -> Any:
    """An UPDATE of the job that matches only while ``lease`` still holds it: the fence every
    write a worker makes under its lease goes through."""
    return sa.update(Job).where(
        col(Job.id) == lease.job_id,
        Job.status == JobState.RUNNING,
        Job.attempts == lease.attempt,
    )


def mark_started(engine: Engine, lease: Lease, *, device: str, torch_version: str) -> None:
    with write_session(engine) as session:
        session.exec(fenced_update(lease).values(device=device, torch_version=torch_version))


@dataclass(frozen=True)
class HeartbeatReply:
    is_owner: bool
    is_cancel_requested: bool


def heartbeat(engine: Engine, lease: Lease, *, lease_s: float) -> HeartbeatReply:
    """Renew the lease; tells the worker whether it still owns the job and if cancel was asked."""
    now = utcnow()
    statement = (
        fenced_update(lease)
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_s))
        .returning(Job.is_cancel_requested)
    )
    with write_session(engine) as session:
        row = session.exec(statement).first()
    if row is None:
        return HeartbeatReply(is_owner=False, is_cancel_requested=False)
    return HeartbeatReply(is_owner=True, is_cancel_requested=bool(row[0]))


def _finalize(engine: Engine, lease: Lease, **values: Any) -> bool:
    with write_session(engine) as session:
        result = session.exec(
            fenced_update(lease).values(finished_at=utcnow(), lease_expires_at=None, **values)
        )
        return result.rowcount == 1


def finish_job(engine: Engine, lease: Lease, *, stop_reason: str | None = None) -> bool:
    """Succeeded; ``stop_reason`` says why it ended before its last epoch, if it did."""
    return _finalize(engine, lease, status=JobState.SUCCEEDED, stop_reason=stop_reason)


def fail_job(engine: Engine, lease: Lease, error: str) -> bool:
    return _finalize(engine, lease, status=JobState.FAILED, error=error[:10_000])


def mark_cancelled(engine: Engine, lease: Lease) -> bool:
    return _finalize(engine, lease, status=JobState.CANCELLED, error="cancelled by request")


def release_job(engine: Engine, lease: Lease) -> bool:
    """Hand a job back to the queue on a warm shutdown; this attempt does not count."""
    with write_session(engine) as session:
        result = session.exec(
            fenced_update(lease).values(
                status=JobState.QUEUED,
                attempts=Job.attempts - 1,
                worker_host=None,
                worker_pid=None,
                lease_expires_at=None,
            )
        )
        if result.rowcount == 1:
            announce_work(session)
        return result.rowcount == 1


def requeue_stale_jobs(engine: Engine) -> list[int]:
    """Running jobs whose lease expired: back to the queue, or failed after max_attempts.

    A job whose cancel was asked before its worker died ends cancelled instead.
    """
    now = utcnow()
    expired = (
        Job.status == JobState.RUNNING,
        col(Job.lease_expires_at) < now,
    )
    lost_message = sa.literal("worker lost ") + sa.cast(Job.attempts, sa.String) + " times"
    with write_session(engine) as session:
        cancelled = session.exec(
            sa.update(Job)
            .where(*expired, col(Job.is_cancel_requested))
            .values(status=JobState.CANCELLED, finished_at=now, lease_expires_at=None)
            .returning(Job.id)
        ).all()
        failed = session.exec(
            sa.update(Job)
            .where(*expired, Job.attempts >= Job.max_attempts)
            .values(
                status=JobState.FAILED, finished_at=now, lease_expires_at=None, error=lost_message
            )
            .returning(Job.id)
        ).all()
        requeued = session.exec(
            sa.update(Job)
            .where(*expired)
            .values(status=JobState.QUEUED, worker_host=None, worker_pid=None)
            .returning(Job.id)
        ).all()
        if requeued:
            announce_work(session)
    return [row[0] for row in [*cancelled, *failed, *requeued]]


def expire_leases_of(engine: Engine, worker: WorkerIdentity) -> list[int]:
    """End the leases of a worker known to be dead, so its jobs are reclaimed now.

    Its pool saw it exit; waiting out the lease would only idle the job. Remote hosts'
    workers, whose deaths nobody sees, still come back when their leases run out.
    """
    with write_session(engine) as session:
        rows = session.exec(
            sa.update(Job)
            .where(
                Job.status == JobState.RUNNING,
                Job.worker_host == worker.host,
                Job.worker_pid == worker.pid,
            )
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
            .returning(Job.id)
        ).all()
    return [row[0] for row in rows]


def overdue_cancellations(
    engine: Engine, *, host: str, pids: list[int], grace_s: float
) -> list[Job]:
    """Running jobs of these workers whose cancel was asked more than ``grace_s`` ago."""
    if not pids:
        return []
    asked_before = utcnow() - timedelta(seconds=grace_s)
    with read_session(engine) as session:
        return list(
            session.exec(
                select(Job).where(
                    Job.status == JobState.RUNNING,
                    Job.worker_host == host,
                    col(Job.worker_pid).in_(pids),
                    col(Job.is_cancel_requested),
                    col(Job.cancel_requested_at) < asked_before,
                )
            ).all()
        )
