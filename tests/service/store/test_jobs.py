"""The job store and queue on a real database: SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from tests.utils.store_jobs import WORKER, claim, enqueue, status_of
from torchkiln.service.store import jobs, progress
from torchkiln.service.store.db import read_session, write_session
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import Job, MetricPoint, utcnow


def test_claims_highest_priority_then_oldest(any_engine: Engine) -> None:
    first, urgent, second = enqueue(any_engine), enqueue(any_engine, 9), enqueue(any_engine)
    claimed = [claim(any_engine) for _ in range(3)]
    assert [j.id for j in claimed if j] == [urgent, first, second]
    assert claim(any_engine) is None
    job = claimed[0]
    assert job is not None
    assert job.status == JobState.RUNNING and job.attempts == 1
    assert (job.worker_host, job.worker_pid) == ("test-host", 1)
    assert job.lease_expires_at is not None and job.lease_expires_at > utcnow()


def test_claim_honours_the_requested_device(any_engine: Engine) -> None:
    gpu_job = enqueue(any_engine, device="cuda")
    assert claim(any_engine, devices=["auto", "cpu"]) is None
    claimed = claim(any_engine, devices=["auto", "cpu", "cuda", "cuda:0"])
    assert claimed is not None and claimed.id == gpu_job


def test_concurrent_claims_never_share_a_job(any_engine: Engine) -> None:
    ids = {enqueue(any_engine) for _ in range(40)}
    got: list[int] = []
    lock = threading.Lock()

    def drain() -> None:
        while (job := claim(any_engine)) is not None:
            with lock:
                got.append(job.id)  # type: ignore[arg-type]

    threads = [threading.Thread(target=drain) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == sorted(ids)  # every job once, none twice


def test_writes_from_a_stale_lease_are_ignored(any_engine: Engine) -> None:
    job_id = enqueue(any_engine)
    first = claim(any_engine, lease_s=0.01)
    assert first is not None
    stale = jobs.Lease(job_id, first.attempts)
    time.sleep(0.05)
    assert jobs.requeue_stale_jobs(any_engine) == [job_id]
    second = claim(any_engine)
    assert second is not None and second.attempts == 2
    assert not jobs.finish_job(any_engine, stale)
    assert not progress.record_epochs(any_engine, stale, [(1, {"train_loss": 1.0})])
    assert not jobs.heartbeat(any_engine, stale, lease_s=30).is_owner
    assert jobs.heartbeat(any_engine, jobs.Lease(job_id, 2), lease_s=30).is_owner
    assert jobs.finish_job(any_engine, jobs.Lease(job_id, 2))
    assert status_of(any_engine, job_id).status == JobState.SUCCEEDED


def test_lost_workers_requeue_then_fail_with_reason(any_engine: Engine) -> None:
    job_id = enqueue(any_engine, max_attempts=2)
    for _ in range(2):
        assert claim(any_engine, lease_s=0.01) is not None
        time.sleep(0.05)
        jobs.requeue_stale_jobs(any_engine)
    job = status_of(any_engine, job_id)
    assert job.status == JobState.FAILED
    assert job.error == "worker lost 2 times"
    assert job.finished_at is not None


def test_cancel_asked_of_a_dead_workers_job_ends_cancelled(any_engine: Engine) -> None:
    job_id = enqueue(any_engine)
    assert claim(any_engine, lease_s=0.01) is not None
    with write_session(any_engine) as session:
        assert jobs.cancel_job(session, job_id).is_cancel_requested
    time.sleep(0.05)
    jobs.requeue_stale_jobs(any_engine)
    assert status_of(any_engine, job_id).status == JobState.CANCELLED


def test_release_hands_back_without_spending_an_attempt(any_engine: Engine) -> None:
    job_id = enqueue(any_engine)
    job = claim(any_engine)
    assert job is not None
    assert jobs.release_job(any_engine, jobs.Lease(job_id, job.attempts))
    back = status_of(any_engine, job_id)
    assert back.status == JobState.QUEUED and back.attempts == 0 and back.worker_pid is None


def test_rewind_drops_metrics_past_the_last_checkpoint(any_engine: Engine) -> None:
    job_id = enqueue(any_engine)
    job = claim(any_engine)
    assert job is not None
    lease = jobs.Lease(job_id, job.attempts)
    progress.record_epochs(any_engine, lease, [(e, {"train_loss": 1.0 / e}) for e in (1, 2, 3)])
    record = progress.CheckpointFile(epoch=2, path="jobs/1/x.pt", sha256="0" * 64, size_bytes=1)
    progress.record_checkpoint(any_engine, lease, record, keep=1)
    checkpoint = progress.rewind_to_checkpoint(any_engine, lease).checkpoint
    assert checkpoint is not None and checkpoint.epoch == 2
    with read_session(any_engine) as session:
        epochs = session.exec(select(MetricPoint.epoch).where(MetricPoint.job_id == job_id)).all()
    assert sorted(epochs) == [1, 2]
    assert status_of(any_engine, job_id).epoch == 2


def test_non_finite_metric_values_are_stored_as_null(any_engine: Engine) -> None:
    job_id = enqueue(any_engine)
    job = claim(any_engine)
    assert job is not None
    lease = jobs.Lease(job_id, job.attempts)
    progress.record_epochs(
        any_engine, lease, [(1, {"train_loss": float("nan"), "w": float("inf")})]
    )
    with read_session(any_engine) as session:
        values = session.exec(select(MetricPoint.value).where(MetricPoint.job_id == job_id)).all()
    assert values == [None, None]


def test_lease_expiry_is_compared_in_utc(any_engine: Engine) -> None:
    job_id = enqueue(any_engine)
    assert claim(any_engine, lease_s=3600) is not None
    assert jobs.requeue_stale_jobs(any_engine) == []
    with write_session(any_engine) as session:
        session.exec(
            sa.update(Job)
            .where(Job.id == job_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert jobs.requeue_stale_jobs(any_engine) == [job_id]


def test_expiring_a_dead_workers_leases_requeues_its_job_at_once(any_engine: Engine) -> None:
    job_id = enqueue(any_engine)
    other = enqueue(any_engine)
    assert claim(any_engine, lease_s=3600) is not None
    assert jobs.claim_next_job(
        any_engine,
        worker=jobs.WorkerIdentity(host="test-host", pid=2),
        devices=["auto"],
        lease_s=3600,
    )
    assert jobs.expire_leases_of(any_engine, WORKER) == [job_id]
    assert jobs.requeue_stale_jobs(any_engine) == [job_id]
    assert status_of(any_engine, job_id).status == JobState.QUEUED
    assert status_of(any_engine, other).status == JobState.RUNNING  # pid 2 is alive


def test_overdue_cancellations_name_jobs_past_the_grace(any_engine: Engine) -> None:
    job_id = enqueue(any_engine)
    assert claim(any_engine) is not None
    with write_session(any_engine) as session:
        jobs.cancel_job(session, job_id)
    overdue = {"host": "test-host", "pids": [1]}
    assert jobs.overdue_cancellations(any_engine, **overdue, grace_s=60) == []
    time.sleep(0.05)
    found = jobs.overdue_cancellations(any_engine, **overdue, grace_s=0.01)
    assert [job.id for job in found] == [job_id]
    assert jobs.overdue_cancellations(any_engine, host="other", pids=[1], grace_s=0.01) == []
