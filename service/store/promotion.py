"""Which version serves: the ``production`` alias, and the rules that move it on success.

A new version never changes what ``/predict/<model>`` answers by itself. The first succeeded
version of a model becomes its ``production`` version (so there is always an explicit
pointer); after that the alias moves only by PUT, a sweep's promote, or the job's own opt-in
``promote`` rule, applied here in the same transaction that marks the job succeeded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from torchkiln.models.common.schedules import MetricName, Mode, mode_for
from torchkiln.service.store.aliases import find_alias, set_alias
from torchkiln.service.store.db import write_session
from torchkiln.service.store.errors import NoCheckpoint
from torchkiln.service.store.jobs import Lease, fenced_update
from torchkiln.service.store.patterns import ALIAS_PATTERN
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import Job, utcnow
from torchkiln.service.store.versions import final_metrics

PRODUCTION = "production"


class PromoteRule(BaseModel):
    """``{"alias": "production", "if_better": "val_loss"}``: on success, move the alias here
    if this job's val_loss beats the aliased version's (no ``if_better``: always move it)."""

    model_config = ConfigDict(extra="forbid")

    alias: str = Field(PRODUCTION, pattern=ALIAS_PATTERN, description="The alias to move.")
    if_better: MetricName | None = Field(
        None, description="Move only if this metric beats the aliased version's value."
    )
    mode: Mode | None = Field(None, description="min or max; null: from the metric's name.")

    @model_validator(mode="after")
    def _default_mode(self) -> PromoteRule:
        if self.if_better is not None and self.mode is None:
            self.mode = mode_for(self.if_better)
        return self


class NoProductionVersion(NoCheckpoint):
    """The model has versions but no ``production`` alias (someone deleted it)."""


def production_job_id(session: Session, models: Sequence[str]) -> int | None:
    """The job ``production`` names among ``models``; None while none of them has a version."""
    row = find_alias(session, models, PRODUCTION)
    if row is not None:
        return row.job_id
    if _version_count(session, models) == 0:
        return None
    names = " or ".join(models)
    raise NoProductionVersion(
        f"{names} has versions but no {PRODUCTION!r} alias: point it with PUT "
        f'/models/{models[0]}/aliases/{PRODUCTION} {{"job_id": N}}, or pick with ?job_id= '
        "or ?alias="
    )


@dataclass(frozen=True)
class Finished:
    """What finishing a job did: whether this lease still held it, and the aliases it moved."""

    is_owner: bool
    moved_aliases: tuple[str, ...] = ()


def finish_and_promote(engine: Engine, lease: Lease, *, stop_reason: str | None) -> Finished:
    """Mark the job succeeded and apply its promotion in one transaction.

    The caller touches the model's aliases marker after this returns (after the commit), so a
    cache that sees the new marker also sees the moved alias.
    """
    try:
        return _finish_and_promote(engine, lease, stop_reason)
    except sa.exc.IntegrityError:
        # On PostgreSQL two first versions finishing at once can both try to create the
        # alias; the loser's transaction rolls back whole, and again sees the winner's alias.
        return _finish_and_promote(engine, lease, stop_reason)


def _finish_and_promote(engine: Engine, lease: Lease, stop_reason: str | None) -> Finished:
    with write_session(engine) as session:
        result = session.exec(
            fenced_update(lease).values(
                status=JobState.SUCCEEDED,
                finished_at=utcnow(),
                lease_expires_at=None,
                stop_reason=stop_reason,
            )
        )
        if result.rowcount != 1:
            return Finished(is_owner=False)
        job = session.get(Job, lease.job_id)
        assert job is not None
        return Finished(is_owner=True, moved_aliases=tuple(promote(session, job)))


def promote(session: Session, job: Job) -> list[str]:
    """Aliases a just-succeeded job takes: ``production`` if it is the model's first version,
    and its rule's alias if the rule says so."""
    assert job.id is not None
    moved: list[str] = []
    if find_alias(session, [job.model], PRODUCTION) is None and (
        _version_count(session, [job.model]) == 1
    ):
        set_alias(session, model=job.model, alias=PRODUCTION, job_id=job.id)
        moved.append(PRODUCTION)
    if job.promote is None:
        return moved
    rule = PromoteRule.model_validate(job.promote)
    current = find_alias(session, [job.model], rule.alias)
    if current is not None and current.job_id == job.id:
        return moved
    if current is None or _beats(session, rule, job, current.job_id):
        set_alias(session, model=job.model, alias=rule.alias, job_id=job.id)
        moved.append(rule.alias)
    return moved


def _beats(session: Session, rule: PromoteRule, job: Job, other_id: int) -> bool:
    if rule.if_better is None:
        return True
    other = session.get(Job, other_id)
    mine = version_metric(session, job, rule.if_better)
    theirs = version_metric(session, other, rule.if_better) if other is not None else None
    if mine is None or not math.isfinite(mine):
        return False
    if theirs is None:
        return True
    return mine < theirs if rule.mode == "min" else mine > theirs


def version_metric(session: Session, job: Job, metric: str) -> float | None:
    """The metric of the weights that serve: the best epoch's when the job watched it, else
    the last recorded value."""
    watch = job.params.get("watch") or {}
    if watch.get("metric") == metric and job.best_value is not None:
        return job.best_value
    assert job.id is not None
    return final_metrics(session, [job.id]).get(job.id, {}).get(metric)


def _version_count(session: Session, models: Sequence[str]) -> int:
    return session.exec(
        select(func.count())
        .select_from(Job)
        .where(col(Job.model).in_(models), Job.status == JobState.SUCCEEDED)
    ).one()
