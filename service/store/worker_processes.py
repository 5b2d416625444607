"""The worker table: each worker process registers, heartbeats (busy or idle) and signs off."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from torchkiln.service.store.db import write_session
from torchkiln.service.store.devices import claimable_requests
from torchkiln.service.store.jobs import WorkerIdentity
from torchkiln.service.store.states import JobState, WorkerState
from torchkiln.service.store.tables import Job, WorkerProcess, utcnow

# Rows of workers gone this long are deleted: every respawn adds one.
KEEP_GONE_WORKERS = timedelta(days=1)


def register_worker(engine: Engine, identity: WorkerIdentity, device: str) -> int:
    """A row for this process; returns its id, which its heartbeats name."""
    with write_session(engine) as session:
        row = WorkerProcess(host=identity.host, pid=identity.pid, device=device)
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id


def beat_worker(engine: Engine, worker_id: int, *, job_id: int | None) -> None:
    """The worker is alive: busy with ``job_id``, or idle when it is None."""
    status = WorkerState.IDLE if job_id is None else WorkerState.BUSY
    with write_session(engine) as session:
        session.exec(
            sa.update(WorkerProcess)
            .where(col(WorkerProcess.id) == worker_id)
            .values(heartbeat_at=utcnow(), status=status, job_id=job_id)
        )


def sign_off_worker(engine: Engine, worker_id: int) -> None:
    with write_session(engine) as session:
        session.exec(
            sa.update(WorkerProcess)
            .where(col(WorkerProcess.id) == worker_id)
            .values(heartbeat_at=utcnow(), status=WorkerState.STOPPED, job_id=None)
        )


def mark_worker_lost(engine: Engine, identity: WorkerIdentity) -> None:
    """Its pool saw the process die without signing off."""
    with write_session(engine) as session:
        session.exec(
            sa.update(WorkerProcess)
            .where(
                WorkerProcess.host == identity.host,
                WorkerProcess.pid == identity.pid,
                col(WorkerProcess.status).in_([WorkerState.IDLE, WorkerState.BUSY]),
            )
            .values(status=WorkerState.LOST, job_id=None)
        )


def prune_workers(engine: Engine) -> None:
    """Forget workers that have not beaten for ``KEEP_GONE_WORKERS``."""
    with write_session(engine) as session:
        session.exec(
            sa.delete(WorkerProcess).where(
                col(WorkerProcess.heartbeat_at) < utcnow() - KEEP_GONE_WORKERS
            )
        )


def is_live(worker: WorkerProcess, lease_s: float) -> bool:
    """Alive: not signed off and beaten within two leases (a beat comes every third of one)."""
    recent = worker.heartbeat_at >= utcnow() - timedelta(seconds=2 * lease_s)
    return recent and worker.status in (WorkerState.IDLE, WorkerState.BUSY)


def _live(lease_s: float) -> tuple[Any, ...]:
    return (
        col(WorkerProcess.heartbeat_at) >= utcnow() - timedelta(seconds=2 * lease_s),
        col(WorkerProcess.status).in_([WorkerState.IDLE, WorkerState.BUSY]),
    )


def count_live_workers(session: Session, lease_s: float) -> int:
    return session.exec(select(func.count()).where(*_live(lease_s))).one()


def waiting_reasons(session: Session, jobs: list[Job], lease_s: float) -> dict[int, str]:
    """Why each queued job in ``jobs`` cannot start: no live worker, or none whose device
    can honour its ``device`` request. Jobs that only wait their turn are left out."""
    queued = [job for job in jobs if job.status == JobState.QUEUED and job.id is not None]
    if not queued:
        return {}
    devices = sorted(set(session.exec(select(WorkerProcess.device).where(*_live(lease_s))).all()))
    if not devices:
        reason = "no live worker: start one (torchkiln worker, or serve --workers N)"
        return {job.id: reason for job in queued}  # type: ignore[misc]
    claimable = {request for device in devices for request in claimable_requests(device)}
    return {
        job.id: (  # type: ignore[misc]
            f"no live worker can run device {job.device_requested!r}; "
            f"live workers have: {', '.join(devices)}"
        )
        for job in queued
        if job.device_requested not in claimable
    }


def list_workers(session: Session, *, limit: int, offset: int) -> tuple[list[WorkerProcess], int]:
    """Workers, most recently heard from first, and how many there are."""
    count = session.exec(select(func.count()).select_from(WorkerProcess)).one()
    page = session.exec(
        select(WorkerProcess)
        .order_by(col(WorkerProcess.heartbeat_at).desc(), col(WorkerProcess.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return list(page), count
