"""A multi-host job's gang, through its job row: the worker that claims the job is node 0
and publishes the rendezvous endpoint; other workers each take one of the remaining node
slots (``join_gang``), and torch's c10d rendezvous starts training once all are there."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from torchkiln.service.store.db import read_session, write_session
from torchkiln.service.store.jobs import Lease, fenced_update, requeue_stale_jobs
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import Job, utcnow
from torchkiln.service.store.wakeups import announce_work


def publish_endpoint(engine: Engine, lease: Lease, endpoint: str) -> bool:
    """Node 0 tells the other nodes where its rendezvous store listens (host:port)."""
    with write_session(engine) as session:
        result = session.exec(fenced_update(lease).values(gang_endpoint=endpoint))
        if result.rowcount == 1:
            announce_work(session)  # wakes idle workers to join
        return result.rowcount == 1


def join_gang(engine: Engine, *, devices: list[str]) -> Job | None:
    """Take a free node slot of a running gang this worker's device can serve, or None.

    The returned row's ``gang_joined`` is this worker's slot count, its ``attempts`` the
    attempt the gang trains. PostgreSQL: FOR UPDATE SKIP LOCKED picks the row; SQLite: the
    one UPDATE runs alone (BEGIN IMMEDIATE), and its WHERE rechecks the free slot.
    """
    open_slot = (
        Job.status == JobState.RUNNING,
        col(Job.gang_endpoint).is_not(None),
        Job.gang_joined < Job.gang_nodes,
    )
    candidate = (
        select(Job.id)
        .where(*open_slot, col(Job.device_requested).in_(devices))
        .order_by(col(Job.id))
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = (
        sa.update(Job)
        .where(col(Job.id) == candidate, *open_slot)
        .values(gang_joined=Job.gang_joined + 1)
        .returning(Job)
    )
    with read_session(engine) as session:
        # Idle workers ask on every poll: a read first spares SQLite a write lock each time.
        if session.exec(select(Job.id).where(*open_slot).limit(1)).first() is None:
            return None
    with write_session(engine) as session:
        row = session.exec(statement).first()
        return row[0] if row is not None else None


def nodes_joined(engine: Engine, job_id: int) -> int:
    with read_session(engine) as session:
        job = session.get(Job, job_id)
        return 0 if job is None else job.gang_joined


def requeue_unassembled(engine: Engine, lease: Lease, reason: str) -> bool:
    """The gang did not assemble in time: the slots are freed and the job goes back to the
    queue with ``reason`` as its error (this attempt counts), or fails with it once its
    attempts are spent. Its checkpoints and metrics stay as they were."""
    freed = {
        "error": reason,
        "worker_host": None,
        "worker_pid": None,
        "lease_expires_at": None,
        "gang_joined": 0,
        "gang_endpoint": None,
    }
    with write_session(engine) as session:
        failed = session.exec(
            fenced_update(lease)
            .where(Job.attempts >= Job.max_attempts)
            .values(status=JobState.FAILED, finished_at=utcnow(), **freed)
        ).rowcount
        requeued = session.exec(fenced_update(lease).values(status=JobState.QUEUED, **freed))
        if requeued.rowcount == 1:
            announce_work(session)
        return failed + requeued.rowcount == 1


def lose_attempt(engine: Engine, lease: Lease) -> list[int]:
    """A node of the gang is gone: end the lease now and requeue (or fail) the job, as a
    lost attempt, from its last checkpoint."""
    with write_session(engine) as session:
        session.exec(fenced_update(lease).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    return requeue_stale_jobs(engine)
