"""Versions (a model's succeeded jobs), their final metrics, disk usage, and deleting a job."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, func, select

from torchkiln.service.store.aliases import aliases_of
from torchkiln.service.store.checkpoint_files import temp_bytes_by_job
from torchkiln.service.store.errors import JobInUse
from torchkiln.service.store.jobs import get_job
from torchkiln.service.store.states import TERMINAL, JobState
from torchkiln.service.store.tables import Checkpoint, Job, MetricPoint


def succeeded_jobs(session: Session, model: str) -> list[Job]:
    """A model's versions, newest first."""
    return list(
        session.exec(
            select(Job)
            .where(Job.model == model, Job.status == JobState.SUCCEEDED)
            .order_by(col(Job.finished_at).desc(), col(Job.id).desc())
        )
    )


def final_metrics(session: Session, job_ids: Sequence[int]) -> dict[int, dict[str, float | None]]:
    """Each job's last recorded value of each metric name."""
    if not job_ids:
        return {}
    last = (
        select(func.max(MetricPoint.id))
        .where(col(MetricPoint.job_id).in_(job_ids))
        .group_by(col(MetricPoint.job_id), col(MetricPoint.name))
    )
    rows = session.exec(
        select(MetricPoint.job_id, MetricPoint.name, MetricPoint.value).where(
            col(MetricPoint.id).in_(last)
        )
    )
    finals: dict[int, dict[str, float | None]] = {}
    for job_id, name, value in rows:
        finals.setdefault(job_id, {})[name] = value
    return finals


def disk_bytes(session: Session, job_ids: Sequence[int]) -> dict[int, int]:
    """Bytes of checkpoints each job keeps on disk, from the checkpoint table."""
    if not job_ids:
        return {}
    rows = session.exec(
        select(Checkpoint.job_id, func.sum(Checkpoint.size_bytes))
        .where(col(Checkpoint.job_id).in_(job_ids))
        .group_by(col(Checkpoint.job_id))
    )
    return {job_id: int(total or 0) for job_id, total in rows}


def usage_by_model(session: Session) -> dict[str, int]:
    rows = session.exec(
        select(Job.model, func.sum(Checkpoint.size_bytes))
        .join(Checkpoint, col(Checkpoint.job_id) == col(Job.id))
        .group_by(col(Job.model))
        .order_by(col(Job.model))
    )
    return {model: int(total or 0) for model, total in rows}


def temp_usage_by_model(session: Session, artifacts_dir: Path) -> dict[str, int]:
    """Bytes of half-written checkpoints (a killed write's) per model, until a worker of
    that job removes them."""
    by_job = temp_bytes_by_job(artifacts_dir)
    if not by_job:
        return {}
    rows = session.exec(select(Job.id, Job.model).where(col(Job.id).in_(list(by_job))))
    totals: dict[str, int] = {}
    for job_id, model in rows:
        totals[model] = totals.get(model, 0) + by_job[job_id]  # type: ignore[index]
    return totals


def version_rows(session: Session, model: str) -> list[dict[str, Any]]:
    """Every version of ``model`` with its final metrics, best epoch, lineage, aliases, bytes."""
    versions = succeeded_jobs(session, model)
    ids = [job.id for job in versions if job.id is not None]
    finals, named, sizes = (
        final_metrics(session, ids),
        aliases_of(session, ids),
        disk_bytes(session, ids),
    )
    return [
        {
            "job_id": job.id,
            "params": job.params,
            "finished_at": job.finished_at,
            "epochs": job.epoch,
            "metrics": finals.get(job.id, {}),  # type: ignore[arg-type]
            "best_epoch": job.best_epoch,
            "best_value": job.best_value,
            "init_from": job.params.get("init_from"),
            "sweep_id": job.sweep_id,
            "aliases": named.get(job.id, []),  # type: ignore[arg-type]
            "disk_bytes": sizes.get(job.id, 0),  # type: ignore[arg-type]
        }
        for job in versions
    ]


def delete_job(session: Session, job_id: int) -> Job:
    """Delete a finished job's rows; the caller removes its folder once this commits.

    Refused while it runs or is queued, while an alias names it, and while an unfinished job
    will start from its weights (``init_from``).
    """
    job = get_job(session, job_id)
    if job.status not in TERMINAL:
        raise JobInUse(f"job {job_id} is {job.status}: cancel it first")
    names = aliases_of(session, [job_id]).get(job_id)
    if names:
        raise JobInUse(
            f"job {job_id} is aliased as {', '.join(repr(n) for n in names)} of {job.model}: "
            "move or delete the alias first"
        )
    pending = session.exec(select(Job).where(col(Job.status).not_in(list(TERMINAL)))).all()
    users = [j.id for j in pending if j.params.get("init_from") == job_id]
    if users:
        raise JobInUse(f"job {job_id} is the init_from of unfinished job(s) {users}")
    # Its metric points and checkpoint rows go with it: ON DELETE CASCADE (SQLite: the
    # engine turns foreign keys on for every connection).
    session.delete(job)
    return job
