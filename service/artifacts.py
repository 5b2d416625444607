"""Per-job progress and checkpoint records, written by workers under their lease."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from service.db import write_session
from service.jobs import Lease
from service.metrics import add_points, delete_points_after
from service.states import JobState
from service.tables import Checkpoint, Job, utcnow


def _own(session: Session, lease: Lease, **values: object) -> bool:
    """Apply ``values`` to the job if this lease still holds it; False if it moved on."""
    values = values or {"heartbeat_at": utcnow()}
    result = session.exec(
        sa.update(Job)
        .where(
            col(Job.id) == lease.job_id,
            Job.status == JobState.RUNNING,
            Job.attempts == lease.attempt,
        )
        .values(**values)
    )
    return result.rowcount == 1


def record_epochs(
    engine: Engine, lease: Lease, epochs: Sequence[tuple[int, dict[str, float]]]
) -> bool:
    """Store buffered epochs' metrics and the job's progress in one transaction."""
    if not epochs:
        return True
    with write_session(engine) as session:
        if not _own(session, lease, epoch=epochs[-1][0]):
            return False
        for epoch, metrics in epochs:
            add_points(session, lease.job_id, epoch, metrics)
    return True


def record_checkpoint(
    engine: Engine,
    lease: Lease,
    *,
    epoch: int,
    path: str,
    sha256: str,
    size_bytes: int,
    is_final: bool,
) -> list[str]:
    """Register a checkpoint; returns the paths of the older ones it replaces (to delete)."""
    with write_session(engine) as session:
        if not _own(session, lease):
            return []
        older = session.exec(select(Checkpoint).where(Checkpoint.job_id == lease.job_id)).all()
        session.add(
            Checkpoint(
                job_id=lease.job_id,
                epoch=epoch,
                path=path,
                sha256=sha256,
                size_bytes=size_bytes,
                is_final=is_final,
            )
        )
        stale = [c.path for c in older if c.path != path]
        for checkpoint in older:
            session.delete(checkpoint)
    return stale


def rewind_to_checkpoint(engine: Engine, lease: Lease) -> Checkpoint | None:
    """On (re)start: the newest checkpoint, with metrics past it dropped."""
    with write_session(engine) as session:
        checkpoint = latest_checkpoint(session, lease.job_id)
        epoch = checkpoint.epoch if checkpoint is not None else 0
        _own(session, lease, epoch=epoch)
        delete_points_after(session, lease.job_id, epoch)
    return checkpoint


def latest_checkpoint(session: Session, job_id: int) -> Checkpoint | None:
    return session.exec(
        select(Checkpoint)
        .where(Checkpoint.job_id == job_id)
        .order_by(col(Checkpoint.epoch).desc(), col(Checkpoint.id).desc())
        .limit(1)
    ).first()


def newest_succeeded_job(session: Session, models: Sequence[str]) -> Job | None:
    return session.exec(
        select(Job)
        .where(col(Job.model).in_(models), Job.status == JobState.SUCCEEDED)
        .order_by(col(Job.finished_at).desc(), col(Job.id).desc())
        .limit(1)
    ).first()
