"""Store-level helpers for the unit tests: enqueue a tiny job, claim it, read it back."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from torchkiln.service.store import jobs
from torchkiln.service.store.db import read_session, write_session
from torchkiln.service.store.tables import Job

WORKER = jobs.WorkerIdentity(host="test-host", pid=1)


def enqueue(
    engine: Engine,
    priority: int = 0,
    device: str = "auto",
    max_attempts: int = 3,
    *,
    model: str = "linear",
    params: dict | None = None,
) -> int:
    with write_session(engine) as session:
        job = jobs.enqueue_job(
            session=session,
            model=model,
            params=params or {"epochs": 3, "seed": 0},
            device=device,
            priority=priority,
            max_attempts=max_attempts,
        )
        return job.id  # type: ignore[return-value]


def claim(engine: Engine, lease_s: float = 30.0, devices: list[str] | None = None) -> Job | None:
    return jobs.claim_next_job(
        engine, worker=WORKER, devices=devices or ["auto", "cpu"], lease_s=lease_s
    )


def status_of(engine: Engine, job_id: int) -> Job:
    with read_session(engine) as session:
        return jobs.get_job(session, job_id)
