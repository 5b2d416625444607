"""The pool with real child processes: dead workers' jobs come back at once, a worker deaf
to a cancel is killed after the grace period, and a cold stop kills and hands back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.conftest import make_settings
from tests.utils.fake_workers import doomed_worker, stubborn_worker
from torchkiln.service.store import jobs
from torchkiln.service.store.db import make_engine, read_session, upgrade_database, write_session
from torchkiln.service.store.settings import Settings
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import Job
from torchkiln.workers.pool import WorkerPool

# Long enough that only the pool, never lease expiry, can explain a prompt requeue.
LONG_LEASE_S = 600.0


def pool_settings(tmp_path: Path, **overrides: object) -> Settings:
    base = make_settings(tmp_path, f"sqlite:///{tmp_path / 'kiln.db'}")
    return base.model_copy(update={"lease_s": LONG_LEASE_S, **overrides})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(pool_settings(tmp_path))
    upgrade_database(engine)
    yield engine
    engine.dispose()


def enqueue(engine: Engine, max_attempts: int = 3) -> int:
    with write_session(engine) as session:
        job = jobs.enqueue_job(
            session=session,
            model="linear",
            params={"epochs": 3, "seed": 0},
            device="auto",
            priority=0,
            max_attempts=max_attempts,
        )
        assert job.id is not None
        return job.id


def job_of(engine: Engine, job_id: int) -> Job:
    with read_session(engine) as session:
        return jobs.get_job(session, job_id)


def wait_until(check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.1)


def test_a_killed_workers_job_is_reclaimed_without_waiting_out_its_lease(
    tmp_path: Path, store: Engine
) -> None:
    job_id = enqueue(store, max_attempts=2)
    pool = WorkerPool(pool_settings(tmp_path), 1, target=doomed_worker)
    pool.start()
    try:
        # Each child claims the job and SIGKILLs itself; the pool requeues it at once, and
        # the second loss fails it, all long before the 600 s lease would have run out.
        wait_until(lambda: job_of(store, job_id).status == JobState.FAILED)
    finally:
        pool.stop(grace_s=5)
    job = job_of(store, job_id)
    assert job.error == "worker lost 2 times" and job.attempts == 2


def test_a_worker_deaf_to_cancel_is_killed_after_the_grace_and_the_job_ends_cancelled(
    tmp_path: Path, store: Engine
) -> None:
    job_id = enqueue(store)
    pool = WorkerPool(pool_settings(tmp_path, cancel_grace_s=1.0), 1, target=stubborn_worker)
    pool.start()
    try:
        wait_until(lambda: job_of(store, job_id).status == JobState.RUNNING)
        stubborn_pid = job_of(store, job_id).worker_pid
        assert stubborn_pid in pool.pids
        with write_session(store) as session:
            jobs.cancel_job(session, job_id)
        asked_at = time.monotonic()
        wait_until(lambda: job_of(store, job_id).status == JobState.CANCELLED, timeout_s=30)
        assert time.monotonic() - asked_at >= 1.0
        assert stubborn_pid not in pool.pids and len(pool.pids) == 1  # respawned
    finally:
        pool.stop(grace_s=1)


def test_warm_stop_ignored_then_cold_stop_kills_and_hands_the_job_back(
    tmp_path: Path, store: Engine
) -> None:
    job_id = enqueue(store)
    pool = WorkerPool(pool_settings(tmp_path), 1, target=stubborn_worker)
    pool.start()
    wait_until(lambda: job_of(store, job_id).status == JobState.RUNNING)
    pool.request_stop()
    time.sleep(1.0)
    assert job_of(store, job_id).status == JobState.RUNNING  # deaf to the warm stop
    pool.request_force_stop()
    started = time.monotonic()
    pool.stop(grace_s=60)
    assert time.monotonic() - started < 15
    job = job_of(store, job_id)
    assert job.status == JobState.QUEUED and job.worker_pid is None and job.attempts == 1
