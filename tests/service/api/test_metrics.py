"""GET /jobs/{id}/metrics: cursor polling, name filters, downsampling, nulls; 503 on locks."""

from __future__ import annotations

import math
import sqlite3

from fastapi.testclient import TestClient

from tests.utils.store_jobs import claim
from torchkiln.service.api.app import create_app
from torchkiln.service.store import jobs, progress
from torchkiln.service.store.metric_history import Point, downsample
from torchkiln.service.store.settings import Settings


def job_with_history(client: TestClient, epochs: int) -> int:
    job_id = client.post("/jobs", json={"model": "linear"}).json()["id"]
    engine = client.app.state.engine  # type: ignore[attr-defined]
    job = claim(engine)
    assert job is not None
    lease = jobs.Lease(job_id, job.attempts)
    history = [(e, {"train_loss": 1.0 / e, "w": math.sin(e / 50)}) for e in range(1, epochs + 1)]
    progress.record_epochs(engine, lease, history)
    return job_id


def test_history_pages_by_cursor_and_filters_by_name(client: TestClient) -> None:
    job_id = job_with_history(client, 10)
    first = client.get(f"/jobs/{job_id}/metrics", params={"name": "train_loss", "limit": 4}).json()
    assert [p["epoch"] for p in first["points"]] == [1, 2, 3, 4]
    assert first["is_truncated"] and {p["name"] for p in first["points"]} == {"train_loss"}
    rest = client.get(
        f"/jobs/{job_id}/metrics", params={"name": "train_loss", "since": first["next_since"]}
    ).json()
    assert [p["epoch"] for p in rest["points"]] == list(range(5, 11))
    assert not rest["is_truncated"]
    empty = client.get(
        f"/jobs/{job_id}/metrics", params={"name": "train_loss", "since": rest["next_since"]}
    ).json()
    assert empty["points"] == [] and empty["next_since"] == rest["next_since"]
    both = client.get(f"/jobs/{job_id}/metrics").json()
    assert len(both["points"]) == 20


def test_max_points_keeps_first_last_min_and_max(client: TestClient) -> None:
    job_id = job_with_history(client, 10_000)
    body = client.get(f"/jobs/{job_id}/metrics", params={"name": "w", "max_points": 200}).json()
    values = [p["value"] for p in body["points"]]
    assert body["is_downsampled"] and len(values) <= 200
    epochs = [p["epoch"] for p in body["points"]]
    assert epochs[0] == 1 and epochs[-1] == 10_000 and epochs == sorted(epochs)
    truth = [math.sin(e / 50) for e in range(1, 10_001)]
    assert max(values) == max(truth) and min(values) == min(truth)


def test_downsample_keeps_nulls_and_short_series() -> None:
    series = [Point(i, i, "loss", float(i)) for i in range(1, 100)] + [
        Point(100, 100, "loss", None)
    ]
    kept = downsample(series, 8)
    assert kept[-1].value is None and kept[0].id == 1
    short = [Point(1, 1, "a", 1.0), Point(2, 1, "b", 2.0)]
    assert downsample(short, 8) == short


def test_a_write_that_meets_a_held_lock_answers_503(settings: Settings) -> None:
    impatient = Settings(**{**settings.model_dump(), "sqlite_busy_timeout_s": 0.2})
    with TestClient(create_app(impatient)) as client:
        path = impatient.sqlite_path()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            response = client.post("/jobs", json={"model": "linear"})
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert "busy" in response.json()["detail"]
        assert client.post("/jobs", json={"model": "linear"}).status_code == 201
