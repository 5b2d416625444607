"""A queued job's estimated wait in GET /jobs/{id} and GET /jobs, from recent epoch times."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.utils.store_jobs import claim
from torchkiln.service.store import jobs, progress, worker_processes
from torchkiln.service.store.jobs import WorkerIdentity


def engine_of(client: TestClient) -> Engine:
    return client.app.state.engine  # type: ignore[attr-defined]


def submit(client: TestClient, model: str = "linear", **params: object) -> int:
    response = client.post("/jobs", json={"model": model, "params": params})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def run_epochs(engine: Engine, job_id: int, seconds: list[float]) -> jobs.Lease:
    """Claim the job (the oldest queued) and record its epochs' times."""
    job = claim(engine)
    assert job is not None and job.id == job_id
    lease = jobs.Lease(job_id, job.attempts)
    timed = [(epoch, {"epoch_seconds": s}) for epoch, s in enumerate(seconds, start=1)]
    assert progress.record_epochs(engine, lease, timed)
    return lease


def estimate(client: TestClient, job_id: int) -> float | None:
    return client.get(f"/jobs/{job_id}").json()["queue_estimate_s"]


def test_the_wait_is_the_epochs_ahead_timed_by_recent_epochs_over_live_workers(
    client: TestClient,
) -> None:
    engine = engine_of(client)
    history = submit(client, epochs=4)
    # One slow epoch (a warm-up) among fast ones: the median ignores it.
    assert jobs.finish_job(engine, run_epochs(engine, history, [0.5, 0.5, 0.5, 10.0]))
    running = submit(client, epochs=10)
    run_epochs(engine, running, [0.5, 0.5])  # 8 epochs left: 4 s
    first, second = submit(client, epochs=6), submit(client, epochs=2)
    assert estimate(client, first) is None  # no live worker: waiting_reason says so

    worker_processes.register_worker(engine, WorkerIdentity(host="a", pid=1), "cpu")
    assert (estimate(client, first), estimate(client, second)) == (4.0, 7.0)
    never_run = submit(client, "quadratic", epochs=3)
    behind = submit(client, epochs=1)
    assert estimate(client, never_run) == 8.0
    assert estimate(client, behind) is None  # behind a job of unknown length
    listed = {j["id"]: j["queue_estimate_s"] for j in client.get("/jobs").json()["data"]}
    assert listed == {
        history: None,
        running: None,
        first: 4.0,
        second: 7.0,
        never_run: 8.0,
        behind: None,
    }

    # A second worker is free now; the next job waits for the sooner of the two.
    worker_processes.register_worker(engine, WorkerIdentity(host="b", pid=2), "cpu")
    assert (estimate(client, first), estimate(client, second)) == (0.0, 3.0)
