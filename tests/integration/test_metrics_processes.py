"""With several HTTP processes, any of them answers /metrics for all (multiprocess mode)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_settings
from tests.utils.live_server import LiveServer
from tests.utils.prometheus_text import sample


def test_prediction_latency_sums_over_http_processes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'kiln.db'}")
    server = LiveServer(settings, tmp_path / "log", workers=0, processes=2)
    server.start()
    try:
        with server.client() as http:
            # New connections each time, so the kernel spreads them over both processes.
            for _ in range(12):
                http.post("/predict/linear", json={"x": [1.0]}, headers={"Connection": "close"})
            for _ in range(4):
                text = http.get("/metrics", headers={"Connection": "close"}).text
                count = sample(
                    text,
                    "torchkiln_predict_latency_seconds_count",
                    route="/predict/linear",
                    status="409",
                )
                assert count == 12, text
    finally:
        server.stop()
