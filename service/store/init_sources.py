"""``init_from`` checked at submit: the source is a succeeded job of the same model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlmodel import Session

from torchkiln.service.store.errors import InvalidInput
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import Job


def require_init_sources(session: Session, *, model: str, params: Iterable[dict[str, Any]]) -> None:
    """InvalidInput unless each ``init_from`` in ``params`` names a succeeded ``model`` job.

    Checked here rather than by the worker, which would fail the job only once it runs.
    """
    for job_id in {p["init_from"] for p in params if p.get("init_from") is not None}:
        source = session.get(Job, job_id)
        if source is None:
            raise InvalidInput(f"init_from={job_id}: there is no job {job_id}")
        if source.model != model:
            raise InvalidInput(
                f"init_from={job_id}: job {job_id} trained {source.model!r}, not {model!r}"
            )
        if source.status != JobState.SUCCEEDED:
            raise InvalidInput(
                f"init_from={job_id}: job {job_id} is {source.status}; only a succeeded job's "
                "weights can be started from"
            )
