"""Checkpoint retention never breaks a reader: download and predict while a job checkpoints
every epoch, keeping only the newest."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import make_settings
from tests.utils.live_server import LiveServer, wait_for_job

READERS = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("retention")
    live = LiveServer(make_settings(root, f"sqlite:///{root / 'kiln.db'}"), root / "log")
    live.start()
    yield live
    live.stop()


def test_downloads_and_predictions_survive_keep_last_1(server: LiveServer) -> None:
    params = {"epochs": 400, "checkpoint_every": 1, "keep_last": 1}
    with server.client() as http:
        job = http.post("/jobs", json={"model": "linear", "params": params})
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]
        wait_for_job(http, job_id, {"running", "succeeded", "failed"})

    def read_until_done(reader: int) -> Counter[int]:
        statuses: Counter[int] = Counter()
        with server.client() as http:
            while http.get(f"/jobs/{job_id}").json()["status"] == "running":
                if reader % 2:
                    response = http.get(f"/jobs/{job_id}/checkpoint")
                else:
                    response = http.post(
                        "/predict/linear", params={"job_id": job_id}, json={"x": [1.0]}
                    )
                statuses[response.status_code] += 1
        return statuses

    started = time.monotonic()
    with ThreadPoolExecutor(READERS) as pool:
        counts = sum(pool.map(read_until_done, range(READERS)), Counter())
    with server.client() as http:
        assert wait_for_job(http, job_id)["status"] == "succeeded"
    # 409 only before the first checkpoint exists; anything else is a reader broken by retention.
    assert set(counts) <= {200, 409}, counts
    assert counts[200] > 50, (counts, time.monotonic() - started)
