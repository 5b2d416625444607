"""Whatever dies, no accepted job is lost or run twice: real servers, real worker processes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.conftest import make_settings
from tests.utils.databases import postgres_database
from tests.utils.http_jobs import submit
from tests.utils.live_server import LiveServer, wait_for_job
from tests.utils.trained_server import write_tiny_mnist
from tests.utils.worker_command import WorkerCommand
from torchkiln.service.store.db import make_engine, read_session, upgrade_database, write_session
from torchkiln.service.store.jobs import enqueue_job
from torchkiln.service.store.settings import Settings
from torchkiln.service.store.states import TERMINAL, JobState
from torchkiln.service.store.tables import Job, MetricPoint

logger = logging.getLogger(__name__)


def sqlite_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, f"sqlite:///{tmp_path / 'kiln.db'}")


def epochs_of(http: httpx.Client, job_id: int) -> list[int]:
    query = {"name": "train_loss", "limit": 200_000}
    points = http.get(f"/jobs/{job_id}/metrics", params=query).json()["points"]
    return [p["epoch"] for p in points]


def wait_for_epoch(http: httpx.Client, job_id: int, epoch: int, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = http.get(f"/jobs/{job_id}").json()
        if job["status"] == "running" and job["epoch"] >= epoch:
            return job
        assert job["status"] in ("queued", "running"), job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} did not reach epoch {epoch}")


def test_sigkill_mid_job_resumes_from_the_checkpoint_with_each_epoch_once(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path)
    # Enough digits for an epoch to take a moment.
    write_tiny_mnist(settings.data_dir, train=2000, test=200)
    live = LiveServer(settings, tmp_path / "log", workers=1)
    live.start()
    try:
        with live.client() as http:
            job_id = submit(http, "mnist_mlp", epochs=8, checkpoint_every=2, seed=3)
            running = wait_for_epoch(http, job_id, 3)
            assert running["epoch"] < 8, "the job finished before it could be killed"
            os.kill(running["worker"]["pid"], signal.SIGKILL)
            job = wait_for_job(http, job_id, timeout_s=240)
            assert job["status"] == "succeeded", job
            assert job["attempts"] == 2
            assert epochs_of(http, job_id) == list(range(1, 9))
    finally:
        live.stop()


def test_killing_the_whole_service_loses_none_of_20_jobs(tmp_path: Path) -> None:
    live = LiveServer(sqlite_settings(tmp_path), tmp_path / "log", workers=1)
    live.start()
    with live.client() as http:
        ids = [submit(http, "linear", epochs=300) for _ in range(20)]
        wait_for_job(http, ids[2], timeout_s=120)
        unfinished = [i for i in ids if http.get(f"/jobs/{i}").json()["status"] not in TERMINAL]
        assert unfinished, "every job finished before the kill"
    live.kill_group()
    live.start()
    try:
        with live.client() as http:
            jobs = [wait_for_job(http, job_id, timeout_s=180) for job_id in ids]
            assert [j["status"] for j in jobs] == ["succeeded"] * 20
            for job_id in ids:
                assert epochs_of(http, job_id) == list(range(1, 301))
    finally:
        live.stop()


def enqueue_tiny_jobs(engine: Engine, count: int, epochs: int) -> list[int]:
    with write_session(engine) as session:
        jobs = [
            enqueue_job(
                session=session,
                model="linear",
                params={"epochs": epochs, "seed": i % 7, "optimizer": "sgd", "lr": 0.01},
                device="auto",
                priority=0,
                max_attempts=3,
            )
            for i in range(count)
        ]
    return [job.id for job in jobs if job.id is not None]


def finished_count(engine: Engine) -> int:
    with read_session(engine) as session:
        statement = sa.select(sa.func.count()).where(Job.status.in_(list(TERMINAL)))  # type: ignore[attr-defined]
        return session.execute(statement).scalar_one()


def test_four_workers_run_each_of_200_jobs_exactly_once_on_postgresql(tmp_path: Path) -> None:
    epochs = 5
    with postgres_database() as url:
        settings = make_settings(tmp_path, url)
        engine = make_engine(settings)
        upgrade_database(engine)
        ids = enqueue_tiny_jobs(engine, 200, epochs)
        workers = WorkerCommand(settings, tmp_path / "worker.log", workers=4)
        started = time.monotonic()
        workers.start()
        try:
            deadline = time.monotonic() + 400
            while finished_count(engine) < len(ids):
                assert time.monotonic() < deadline, workers.log()[-3000:]
                time.sleep(0.25)
            elapsed = time.monotonic() - started
            assert workers.stop(signal.SIGTERM) == 0
        finally:
            workers.kill_group()
        with read_session(engine) as session:
            rows = session.execute(sa.select(Job.status, Job.attempts, Job.worker_pid)).all()
            per_epoch = session.execute(
                sa.select(MetricPoint.job_id, MetricPoint.epoch, sa.func.count())
                .where(MetricPoint.name == "train_loss")
                .group_by(MetricPoint.job_id, MetricPoint.epoch)
            ).all()
        engine.dispose()
    assert {(status, attempts) for status, attempts, _ in rows} == {(JobState.SUCCEEDED, 1)}
    assert len(per_epoch) == 200 * epochs and {count for *_, count in per_epoch} == {1}
    claims: dict[int, int] = {}
    for *_, pid in rows:
        claims[pid] = claims.get(pid, 0) + 1
    assert len(claims) >= 2, claims  # the work was shared, not drained by one process
    logger.warning("200 jobs x 4 workers on PostgreSQL: %.1f s, claims per pid %s", elapsed, claims)


async def post_concurrently(url: str, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        body = {"model": "linear", "params": {"epochs": 5}}
        return await asyncio.gather(*(client.post("/jobs", json=body) for _ in range(count)))


def test_500_concurrent_submissions_on_sqlite_all_succeed(tmp_path: Path) -> None:
    live = LiveServer(sqlite_settings(tmp_path), tmp_path / "log", workers=0)
    live.start()
    try:
        started = time.monotonic()
        responses = asyncio.run(post_concurrently(live.url, 500))
        elapsed = time.monotonic() - started
    finally:
        live.stop()
    assert [r.status_code for r in responses] == [201] * 500
    assert len({r.json()["id"] for r in responses}) == 500
    log = live.log_path.read_text(errors="replace")
    assert "database is locked" not in log and "Traceback" not in log
    logger.warning("500 concurrent POST /jobs on SQLite: %.1f s, 0 errors", elapsed)


def test_sigterm_to_a_worker_command_hands_the_job_back_to_resume(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path)
    live = LiveServer(settings, tmp_path / "log", workers=0)
    live.start()
    first = WorkerCommand(settings, tmp_path / "worker.log")
    second = WorkerCommand(settings, tmp_path / "worker.log")
    params = {"epochs": 3_000, "checkpoint_every": 250, "seed": 5}
    try:
        with live.client() as http:
            job_id = submit(http, "linear_noisy", **params)
            first.start()
            wait_for_epoch(http, job_id, 350)
            assert first.stop(signal.SIGTERM) == 0
            handed_back = http.get(f"/jobs/{job_id}").json()
            assert handed_back["status"] == "queued" and handed_back["attempts"] == 0
            assert 350 <= handed_back["epoch"] < 3_000
            second.start()
            job = wait_for_job(http, job_id, timeout_s=240)
            assert job["status"] == "succeeded" and job["attempts"] == 1
            assert epochs_of(http, job_id) == list(range(1, 3_001))
            assert second.stop(signal.SIGTERM) == 0
    finally:
        first.kill_group()
        second.kill_group()
        live.stop()
