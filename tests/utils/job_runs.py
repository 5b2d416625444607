"""Run the next queued job in this process, as a worker would, without a worker process."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from tests.utils.store_jobs import claim
from torchkiln.service.store.settings import Settings
from torchkiln.service.store.tables import Job
from torchkiln.workers.job_run import JobRun


def perform_next_job(settings: Settings, engine: Engine, *, beat_interval_s: float = 1.0) -> Job:
    """Claim the next job and run it to its end; returns the job as claimed."""
    job = claim(engine)
    assert job is not None, "no queued job to run"
    JobRun(
        settings,
        engine,
        job,
        device="cpu",
        worker_id=None,
        beat_interval_s=beat_interval_s,
        should_pause=lambda: False,
    ).perform()
    return job
