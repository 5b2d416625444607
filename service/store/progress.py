"""Per-job progress and checkpoint records, written by workers under their lease."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from torchkiln.service.store.db import write_session
from torchkiln.service.store.jobs import Lease, fenced_update
from torchkiln.service.store.metric_history import add_points, delete_points_after
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import Checkpoint, CheckpointKind, Job, utcnow


def _own(session: Session, lease: Lease, **values: object) -> bool:
    """Apply ``values`` to the job if this lease still holds it; False if it moved on."""
    values = values or {"heartbeat_at": utcnow()}
    result = session.exec(fenced_update(lease).values(**values))
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


@dataclass(frozen=True)
class CheckpointFile:
    """A file a worker just wrote, to register; ``metric_value`` is set on best ones."""

    epoch: int
    path: str
    sha256: str
    size_bytes: int
    is_final: bool = False
    kind: CheckpointKind = CheckpointKind.LAST
    metric_value: float | None = None


def record_checkpoint(
    engine: Engine, lease: Lease, saved: CheckpointFile, *, keep: int
) -> list[str]:
    """Register a checkpoint and keep the newest ``keep`` of its kind.

    Returns the paths of the files it dropped (to delete). A best checkpoint also sets the
    job's best epoch and value, in the same transaction.
    """
    with write_session(engine) as session:
        best = {"best_epoch": saved.epoch, "best_value": saved.metric_value}
        if not _own(session, lease, **(best if saved.kind == CheckpointKind.BEST else {})):
            return []
        for replaced in session.exec(
            select(Checkpoint).where(
                Checkpoint.job_id == lease.job_id, Checkpoint.path == saved.path
            )
        ):
            session.delete(replaced)
        session.add(Checkpoint(job_id=lease.job_id, **asdict(saved)))
        session.flush()
        return _drop(session, _of_kind(session, lease.job_id, saved.kind)[keep:])


def _of_kind(session: Session, job_id: int, kind: CheckpointKind) -> list[Checkpoint]:
    """A job's checkpoints of one kind, newest first."""
    return list(
        session.exec(
            select(Checkpoint)
            .where(Checkpoint.job_id == job_id, Checkpoint.kind == kind)
            .order_by(col(Checkpoint.epoch).desc(), col(Checkpoint.id).desc())
        )
    )


def _drop(session: Session, checkpoints: Sequence[Checkpoint]) -> list[str]:
    for checkpoint in checkpoints:
        session.delete(checkpoint)
    return [c.path for c in checkpoints]


@dataclass(frozen=True)
class Rewind:
    """Where a (re)started job goes on from: its last checkpoint and its best so far."""

    checkpoint: Checkpoint | None
    best: Checkpoint | None
    stale_paths: list[str]
    # Every checkpoint the job still has a row for, relative to the artifacts folder.
    kept_paths: frozenset[str]


def rewind_to_checkpoint(engine: Engine, lease: Lease) -> Rewind:
    """On (re)start: the newest last checkpoint, with metrics and best checkpoints past it
    dropped, since the epochs after it run again."""
    with write_session(engine) as session:
        checkpoint = resume_checkpoint(session, lease.job_id)
        epoch = checkpoint.epoch if checkpoint is not None else 0
        bests = _of_kind(session, lease.job_id, CheckpointKind.BEST)
        stale = _drop(session, [c for c in bests if c.epoch > epoch])
        best = next((c for c in bests if c.epoch <= epoch), None)
        _own(
            session,
            lease,
            epoch=epoch,
            best_epoch=best.epoch if best else None,
            best_value=best.metric_value if best else None,
        )
        delete_points_after(session, lease.job_id, epoch)
        kept = frozenset(
            session.exec(select(Checkpoint.path).where(Checkpoint.job_id == lease.job_id))
        )
    return Rewind(checkpoint=checkpoint, best=best, stale_paths=stale, kept_paths=kept)


def resume_checkpoint(session: Session, job_id: int) -> Checkpoint | None:
    """The newest last checkpoint: weights, optimizer and RNGs to go on training from."""
    return next(iter(_of_kind(session, job_id, CheckpointKind.LAST)), None)


def serving_checkpoint(session: Session, job_id: int) -> Checkpoint | None:
    """What predictions and exports use: the newest best checkpoint, else the newest last."""
    return next(iter(_of_kind(session, job_id, CheckpointKind.BEST)), None) or resume_checkpoint(
        session, job_id
    )


def newest_succeeded_job(session: Session, models: Sequence[str]) -> Job | None:
    return session.exec(
        select(Job)
        .where(col(Job.model).in_(models), Job.status == JobState.SUCCEEDED)
        .order_by(col(Job.finished_at).desc(), col(Job.id).desc())
        .limit(1)
    ).first()
