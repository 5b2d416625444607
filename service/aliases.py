"""Model aliases (``champion`` → job 7) and the marker file that tells caches one moved."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sqlmodel import Session, col, select

from service.errors import AliasNotFound, InvalidInput
from service.jobs import get_job
from service.states import JobState
from service.tables import ModelAlias, utcnow

ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


def aliases_marker(artifacts_dir: Path, model: str) -> Path:
    return artifacts_dir / "models" / f"{model}.aliases"


def touch_aliases(artifacts_dir: Path, model: str) -> None:
    """Replace the marker after an alias commit, so every process's cache looks again.

    A rename makes a new inode, so the stamp changes even where mtimes are coarse.
    """
    marker = aliases_marker(artifacts_dir, model)
    marker.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=marker.parent, prefix=f".{marker.name}.")
    os.close(fd)
    os.replace(tmp_name, marker)


def aliases_stamp(artifacts_dir: Path, model: str) -> tuple[int, int] | None:
    """(inode, mtime) of the marker, or None if no alias of the model was ever set."""
    try:
        stat = aliases_marker(artifacts_dir, model).stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def set_alias(session: Session, *, model: str, alias: str, job_id: int) -> ModelAlias:
    """Point ``alias`` at a succeeded job of ``model``, creating or moving it."""
    job = get_job(session, job_id)
    if job.model != model:
        raise InvalidInput(f"job {job_id} trained {job.model!r}, not {model!r}")
    if job.status != JobState.SUCCEEDED:
        raise InvalidInput(f"job {job_id} is {job.status}; only succeeded jobs are versions")
    row = _find(session, [model], alias) or ModelAlias(model=model, alias=alias, job_id=job_id)
    row.job_id, row.updated_at = job_id, utcnow()
    session.add(row)
    session.flush()
    return row


def delete_alias(session: Session, *, model: str, alias: str) -> None:
    row = _find(session, [model], alias)
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
    row = _find(session, models, alias)
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


def _find(session: Session, models: Sequence[str], alias: str) -> ModelAlias | None:
    return session.exec(
        select(ModelAlias)
        .where(col(ModelAlias.model).in_(models), ModelAlias.alias == alias)
        .order_by(col(ModelAlias.updated_at).desc(), col(ModelAlias.id).desc())
        .limit(1)
    ).first()
