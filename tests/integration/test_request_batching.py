"""Concurrent uploads to a real ``torchkiln serve`` share forward passes (TORCHKILN_BATCHING)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import make_settings
from tests.models.image_factory import encode, seven
from tests.utils.live_server import LiveServer
from tests.utils.prometheus_text import sample
from tests.utils.seeded_jobs import seed_mlp_job

CONNECTIONS = 16
BURST = 20  # requests per connection per burst


def test_concurrent_connections_are_answered_in_shared_forward_passes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'kiln.db'}")
    job_id = seed_mlp_job(settings)
    server = LiveServer(settings, tmp_path / "log", workers=0)
    server.start()
    files = {"file": ("seven.png", encode(seven(), "PNG"), "image/png")}

    def connection(_: int) -> list[httpx.Response]:
        with server.client() as http:
            return [http.post("/predict/mnist", files=files) for _ in range(BURST)]

    try:
        deadline = time.monotonic() + 60
        with ThreadPoolExecutor(CONNECTIONS) as pool, server.client() as http:
            while True:
                answers = [r for burst in pool.map(connection, range(CONNECTIONS)) for r in burst]
                assert {(r.status_code, r.json()["job_id"]) for r in answers} == {(200, job_id)}
                text = http.get("/metrics").text
                passes = sample(text, "torchkiln_predict_batch_size_count", model="mnist_mlp")
                samples = sample(text, "torchkiln_predict_batch_size_sum", model="mnist_mlp")
                assert passes is not None and samples is not None
                # Requests that arrive together share a pass: fewer passes than samples.
                if passes < samples or time.monotonic() > deadline:
                    break
        assert passes < samples, text
    finally:
        server.stop()
