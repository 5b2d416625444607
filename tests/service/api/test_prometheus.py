"""GET /metrics: job gauges and epoch durations from the database, prediction latency."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.utils.prometheus_text import sample
from torchkiln.service.api.app import create_app
from torchkiln.service.store import metric_history
from torchkiln.service.store.db import write_session
from torchkiln.service.store.settings import Settings


def add_epoch_seconds(client: TestClient, job_id: int, seconds: list[float]) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with write_session(engine) as session:
        for epoch, value in enumerate(seconds, start=1):
            metric_history.add_points(session, job_id, epoch, {"epoch_seconds": value, "loss": 1.0})


def test_jobs_by_state_and_queue_depth(client: TestClient) -> None:
    for _ in range(3):
        client.post("/jobs", json={"model": "linear"})
    cancelled = client.post("/jobs", json={"model": "linear"}).json()["id"]
    client.post(f"/jobs/{cancelled}/cancel")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert sample(text, "torchkiln_jobs", state="queued") == 3
    assert sample(text, "torchkiln_jobs", state="cancelled") == 1
    assert sample(text, "torchkiln_jobs", state="running") == 0
    assert sample(text, "torchkiln_queue_depth") == 3


def test_epoch_durations_fold_in_new_points_only(client: TestClient) -> None:
    job_id = client.post("/jobs", json={"model": "linear"}).json()["id"]
    add_epoch_seconds(client, job_id, [0.002, 0.003, 0.7])
    text = client.get("/metrics").text
    name = "torchkiln_epoch_duration_seconds"
    assert sample(text, f"{name}_count", model="linear") == 3
    assert sample(text, f"{name}_bucket", model="linear", le="0.01") == 2
    assert sample(text, f"{name}_bucket", model="linear", le="1.0") == 3
    assert abs(sample(text, f"{name}_sum", model="linear") - 0.705) < 1e-9  # type: ignore[operator]
    # A second scrape adds only the points written since: nothing is counted twice.
    add_epoch_seconds(client, job_id, [20.0])
    text = client.get("/metrics").text
    assert sample(text, f"{name}_count", model="linear") == 4
    assert sample(text, f"{name}_bucket", model="linear", le="10.0") == 3
    assert sample(text, f"{name}_bucket", model="linear", le="30.0") == 4


def test_prediction_latency_and_cache_counters(client: TestClient) -> None:
    client.post("/predict/linear", json={"x": [1.0]})  # 409: nothing trained yet
    client.post("/predict/no_such_model", json={"x": [1.0]})
    client.get("/models")
    text = client.get("/metrics").text
    latency = "torchkiln_predict_latency_seconds_count"
    assert sample(text, latency, route="/predict/linear", status="409") == 1
    assert sample(text, latency, route="/predict/{other}", status="404") == 1
    assert "/models" not in re.findall(r'route="([^"]+)"', text)
    assert sample(text, "torchkiln_model_cache_hits_total") == 0
    assert sample(text, "torchkiln_model_cache_misses_total") == 0


def test_metrics_need_the_api_key_when_one_is_set(settings: Settings) -> None:
    settings.api_key = SecretStr("s3cret")
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 401
        ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and "torchkiln_jobs" in ok.text
