"""Model aliases (``champion`` → job 7): set, move, delete and look up."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from torchkiln.service.store.errors import AliasNotFound, InvalidInput
from torchkiln.service.store.jobs import get_job
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import ModelAlias, utcnow


def set_alias(session: Session, *, model: str, alias: str, job_id: int) -> ModelAlias:
    """Point ``alias`` at a succeeded job of ``model``, creating or moving it."""
    job = get_job(session, job_id)
    if job.model != model:
        raise InvalidInput(f"job {job_id} trained {job.model!r}, not {model!r}")
    if job.status != JobState.SUCCEEDED:
        raise InvalidInput(f"job {job_id} is {job.status}; only succeeded jobs are versions")
    row = find_alias(session, [model], alias) or ModelAlias(model=model, alias=alias, job_id=job_id)
    row.job_id, row.updated_at = job_id, utcnow()
    session.add(row)
    session.flush()
    return row


def delete_alias(session: Session, *, model: str, alias: str) -> None:
    row = find_alias(session, [model], alias)
    if row is None:
        raise AliasNotFound([model], alias)
    session.delete(row)


def list_aliases(session: Session, model: str) -> list[ModelAlias]:
    return list(
        session.exec(
            select(ModelAlias).where(ModelAlias.model == model).order_by(col(ModelAlias.alias))
        )
    )


def aliased_job_id(session: Session, models: Sequence[str], alias: str) -> int:
    """The job an alias names among ``models`` (a family: the most recently moved one)."""
    row = find_alias(session, models, alias)
    if row is None:
        raise AliasNotFound(list(models), alias)
    return row.job_id


def aliases_of(session: Session, job_ids: Sequence[int]) -> dict[int, list[str]]:
    rows = session.exec(
        select(ModelAlias)
        .where(col(ModelAlias.job_id).in_(job_ids))
        .order_by(col(ModelAlias.alias))
    )
    named: dict[int, list[str]] = {}
    for row in rows:
        named.setdefault(row.job_id, []).append(row.alias)
    return named


def find_alias(session: Session, models: Sequence[str], alias: str) -> ModelAlias | None:
    """The alias row among ``models``; in a family, the most recently moved one."""
    return session.exec(
        select(ModelAlias)
        .where(col(ModelAlias.model).in_(models), ModelAlias.alias == alias)
        .order_by(col(ModelAlias.updated_at).desc(), col(ModelAlias.id).desc())
        .limit(1)
    ).first()
