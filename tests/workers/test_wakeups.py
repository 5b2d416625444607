"""Workers wake on new work: a queued job's commit wakes a listener (and a rolled-back one does
not), a lost LISTEN comes back, and an idle pool with a 5 s poll starts a job within ~2 s."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from tests.utils import store_jobs
from tests.utils.databases import POSTGRES_SERVER, postgres_database
from tests.workers.test_pool import enqueue, job_of, wait_until
from torchkiln.service.store import jobs
from torchkiln.service.store.db import make_engine, read_session, upgrade_database, write_session
from torchkiln.service.store.settings import Settings
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import WorkerProcess
from torchkiln.service.store.wakeups import listener_conninfo, socket_dir, wake_sockets
from torchkiln.workers import wake_listener
from torchkiln.workers.pool import WorkerPool

POLL_S = 5.0  # far longer than the wait the tests allow: only a wake-up explains a quick start


@pytest.fixture
def listener(any_db_settings: Settings, any_engine: Engine) -> Iterator[wake_listener.WakeListener]:
    opened = wake_listener.open_listener(any_db_settings)
    assert not isinstance(opened, wake_listener.PollOnly)
    yield opened
    opened.close()
    remove_socket_dir(any_db_settings)


def remove_socket_dir(settings: Settings) -> None:
    directory = socket_dir(sa.make_url(settings.database_url))
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def test_a_queued_job_wakes_listeners_on_commit_and_a_rolled_back_one_does_not(
    any_engine: Engine, listener: wake_listener.WakeListener
) -> None:
    with write_session(any_engine) as session:
        queue_one(session)
        assert not listener.wait(0.2), "woken before the commit"
    assert listener.wait(2.0)
    assert not listener.wait(0.2), "one commit, one wake-up"
    with pytest.raises(RuntimeError), write_session(any_engine) as session:
        queue_one(session)
        raise RuntimeError("roll back")
    assert not listener.wait(0.3)


def test_a_job_handed_back_or_requeued_after_a_lost_lease_wakes_listeners(
    any_engine: Engine, listener: wake_listener.WakeListener
) -> None:
    store_jobs.enqueue(any_engine)
    job = store_jobs.claim(any_engine)
    assert job is not None and listener.wait(2.0)
    assert jobs.release_job(any_engine, jobs.Lease(job.id, job.attempts))  # type: ignore[arg-type]
    assert listener.wait(2.0)
    assert store_jobs.claim(any_engine, lease_s=0.001) is not None
    time.sleep(0.01)
    assert jobs.requeue_stale_jobs(any_engine) and listener.wait(2.0)


def test_a_socket_left_by_a_dead_worker_is_removed_by_the_next_listener(tmp_path: Path) -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    directory = tmp_path / "wake"
    directory.mkdir()
    (directory / str(child.pid)).touch()
    listener = wake_listener.SocketListener(directory)
    try:
        assert [path.name for path in directory.iterdir()] == [str(os.getpid())]
        wake_sockets(directory)
        assert listener.wait(1.0)
    finally:
        listener.close()
    assert not any(directory.iterdir())


def queue_one(session: Session) -> None:
    jobs.enqueue_job(
        session=session,
        model="linear",
        params={"epochs": 1, "seed": 0},
        device="auto",
        priority=0,
        max_attempts=1,
    )


def test_a_lost_listen_connection_polls_then_comes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wake_listener, "RECONNECT_S", 0.0)
    with postgres_database() as url:
        listener = wake_listener.PostgresListener(listener_conninfo(sa.make_url(url)))
        admin = sa.create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
        try:
            assert listener.connection is not None
            pid = listener.connection.info.backend_pid
            with admin.connect() as connection:
                connection.execute(sa.select(sa.func.pg_terminate_backend(pid)))
            # The loss reads as a wake-up (the worker claims once), then the reconnect does.
            assert listener.wait(2.0) and listener.connection is None
            assert listener.wait(2.0) and listener.connection is not None
            engine = make_engine(Settings(database_url=url))
            upgrade_database(engine)
            enqueue(engine)
            engine.dispose()
            assert listener.wait(2.0)
        finally:
            listener.close()
            admin.dispose()


@pytest.mark.slow
def test_an_idle_pool_starts_a_queued_job_long_before_its_next_poll(
    any_db_settings: Settings, any_engine: Engine
) -> None:
    settings = any_db_settings.model_copy(update={"poll_interval_s": POLL_S, "lease_s": 30.0})
    pool = WorkerPool(settings, 1)
    pool.start()
    try:
        wait_until(lambda: has_worker(any_engine), timeout_s=120)
        # Past its first, empty claim: its next poll is ~5 s away.
        time.sleep(1.0)
        submitted = time.monotonic()
        job_id = enqueue(any_engine)
        wait_until(lambda: job_of(any_engine, job_id).status != JobState.QUEUED, POLL_S)
        assert time.monotonic() - submitted < 2.0
    finally:
        pool.stop(grace_s=10)
        remove_socket_dir(settings)


def has_worker(engine: Engine) -> bool:
    with read_session(engine) as session:
        count = sa.select(sa.func.count()).select_from(WorkerProcess)
        return session.execute(count).scalar_one() > 0
