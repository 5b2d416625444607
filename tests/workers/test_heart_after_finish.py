"""No heartbeat after a job's final transition: it would find the lease gone and cry "lost"."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from tests.utils.job_runs import perform_next_job
from torchkiln.service.store.settings import Settings


@pytest.mark.parametrize("params", [{"epochs": 200}, {"epochs": 200, "lr": 10.0}])
def test_a_finished_job_reports_no_lost_lease(
    client: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture, params: dict
) -> None:
    engine = client.app.state.engine  # type: ignore[attr-defined]
    for _ in range(5):
        job_id = client.post("/jobs", json={"model": "linear", "params": params}).json()["id"]
        with caplog.at_level(logging.WARNING):
            # Beats back to back, so one is always in flight when the job ends.
            job = perform_next_job(settings, engine, beat_interval_s=0.0001)
        assert job.id == job_id
        assert client.get(f"/jobs/{job_id}").json()["status"] in ("succeeded", "failed")
    assert "lease lost" not in caplog.text
