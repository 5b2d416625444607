"""Run the next queued job as a worker would, one-process or distributed."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from tests.utils.store_jobs import claim
from torchkiln.service.store.settings import Settings
from torchkiln.workers.distributed import DistributedRun, is_distributed
from torchkiln.workers.job_run import JobRun


def run_next(
    settings: Settings, engine: Engine, should_pause: Callable[[], bool] = lambda: False
) -> int:
    """What a worker does with the job it claims; returns the job's id."""
    job = claim(engine)
    assert job is not None and job.id is not None
    run = DistributedRun if is_distributed(job) else JobRun
    run(
        settings,
        engine,
        job,
        device="cpu",
        worker_id=None,
        beat_interval_s=0.5,
        should_pause=should_pause,
    ).perform()
    return job.id
