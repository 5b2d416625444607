"""Readiness: the database answers, is migrated to head, and some worker beat recently."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from torchkiln.service.store import worker_processes
from torchkiln.service.store.db import write_session
from torchkiln.service.store.jobs import WorkerIdentity
from torchkiln.service.store.tables import WorkerProcess, utcnow

WORKER = WorkerIdentity(host="gpu-host-1", pid=4242)


def engine_of(client: TestClient) -> Engine:
    return client.app.state.engine  # type: ignore[attr-defined]


def test_readyz_needs_a_live_worker(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503 and "no live worker" in response.json()["status"]
    worker_id = worker_processes.register_worker(engine_of(client), WORKER, "cuda:0")
    assert client.get("/readyz").json() == {"status": "ready"}
    worker_processes.sign_off_worker(engine_of(client), worker_id)
    assert client.get("/readyz").status_code == 503


def test_a_worker_silent_for_two_leases_is_not_live(client: TestClient) -> None:
    engine = engine_of(client)
    worker_id = worker_processes.register_worker(engine, WORKER, "cpu")
    lease_s = client.app.state.settings.lease_s  # type: ignore[attr-defined]
    with write_session(engine) as session:
        session.exec(
            sa.update(WorkerProcess)
            .where(WorkerProcess.id == worker_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=2 * lease_s + 1))
        )
    assert client.get("/readyz").status_code == 503
    worker_processes.beat_worker(engine, worker_id, job_id=None)
    assert client.get("/readyz").status_code == 200


def test_readyz_needs_the_newest_migration(client: TestClient) -> None:
    worker_processes.register_worker(engine_of(client), WORKER, "cpu")
    with engine_of(client).begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    response = client.get("/readyz")
    assert response.status_code == 503 and "migration" in response.json()["status"]


def test_workers_lists_each_process_with_its_state(client: TestClient) -> None:
    engine = engine_of(client)
    busy = worker_processes.register_worker(engine, WORKER, "cuda:0")
    worker_processes.beat_worker(engine, busy, job_id=7)
    gone = worker_processes.register_worker(engine, WorkerIdentity(host="gpu-host-2", pid=1), "cpu")
    worker_processes.sign_off_worker(engine, gone)
    body = client.get("/workers").json()
    assert body["count"] == 2 and body["live"] == 1
    by_id = {w["id"]: w for w in body["data"]}
    assert by_id[busy]["status"] == "busy" and by_id[busy]["job_id"] == 7
    assert by_id[busy]["is_live"] and by_id[busy]["host"] == "gpu-host-1"
    assert by_id[gone]["status"] == "stopped" and not by_id[gone]["is_live"]
