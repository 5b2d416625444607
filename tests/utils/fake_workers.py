"""Worker-process stand-ins for pool tests: real processes that misbehave on purpose.

Each has ``run_worker``'s signature, so ``WorkerPool(target=...)`` spawns it like the real one.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from sqlalchemy.engine import Engine

from service.db import make_engine
from service.jobs import Lease, WorkerIdentity, claim_next_job, heartbeat
from service.settings import Settings
from service.tables import Job


def _claim(engine: Engine, settings: Settings, stop: Any) -> Job | None:
    identity = WorkerIdentity.current(os.getpid())
    while not stop.is_set():
        job = claim_next_job(
            engine, worker=identity, devices=["auto", "cpu"], lease_s=settings.lease_seconds
        )
        if job is not None:
            return job
        time.sleep(0.05)
    return None


def stubborn_worker(settings: Settings, device: str, threads: int, stop: Any) -> None:
    """Claims a job and keeps its lease alive forever: deaf to SIGTERM, stop and cancel."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    engine = make_engine(settings)
    job = _claim(engine, settings, stop)
    while job is not None:
        assert job.id is not None
        heartbeat(engine, Lease(job.id, job.attempts), lease_s=settings.lease_seconds)
        time.sleep(0.2)


def doomed_worker(settings: Settings, device: str, threads: int, stop: Any) -> None:
    """Claims a job and dies by SIGKILL at once, as under the kernel's OOM killer."""
    if _claim(make_engine(settings), settings, stop) is not None:
        os.kill(os.getpid(), signal.SIGKILL)
