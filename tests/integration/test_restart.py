"""Queued jobs survive a restart; a warm shutdown hands the running job back to resume."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import make_settings
from tests.utils.live_server import LiveServer, wait_for_job
from torchkiln.service.store.db import make_engine, read_session
from torchkiln.service.store.jobs import get_job
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import Job


def server(tmp_path: Path, workers: int) -> LiveServer:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'kiln.db'}")
    return LiveServer(settings, tmp_path / "log", workers=workers)


def job_in_db(live: LiveServer, job_id: int) -> Job:
    engine = make_engine(live.settings)
    try:
        with read_session(engine) as session:
            return get_job(session, job_id)
    finally:
        engine.dispose()


def test_queued_jobs_survive_a_restart(tmp_path: Path) -> None:
    live = server(tmp_path, workers=0)
    live.start()
    with live.client() as http:
        spec = {"model": "linear", "params": {"epochs": 200}}
        ids = [http.post("/jobs", json=spec).json()["id"] for _ in range(3)]
    live.stop()
    assert {job_in_db(live, i).status for i in ids} == {JobState.QUEUED}
    live.workers = 1
    live.start()
    try:
        with live.client() as http:
            for job_id in ids:
                assert wait_for_job(http, job_id)["status"] == "succeeded"
    finally:
        live.stop()


def test_warm_shutdown_checkpoints_and_the_job_resumes_exactly(tmp_path: Path) -> None:
    live = server(tmp_path, workers=1)
    live.start()
    params = {"epochs": 3_000, "checkpoint_every": 250, "seed": 5}
    with live.client() as http:
        job_id = http.post("/jobs", json={"model": "linear_noisy", "params": params}).json()["id"]
        wait_for_job(http, job_id, {"running"})
        while http.get(f"/jobs/{job_id}").json()["epoch"] < 350:
            time.sleep(0.05)
    live.stop()
    handed_back = job_in_db(live, job_id)
    assert handed_back.status == JobState.QUEUED and handed_back.attempts == 0
    assert 350 <= handed_back.epoch < 3_000
    live.start()
    try:
        with live.client() as http:
            job = wait_for_job(http, job_id, timeout_s=180)
            assert job["status"] == "succeeded" and job["attempts"] == 1
            query = {"name": "train_loss"}
            resumed = http.get(f"/jobs/{job_id}/metrics", params=query).json()["points"]
            assert [p["epoch"] for p in resumed] == list(range(1, 3_001))
            reference = http.post("/jobs", json={"model": "linear_noisy", "params": params})
            reference_id = reference.json()["id"]
            wait_for_job(http, reference_id, timeout_s=180)
            straight = http.get(f"/jobs/{reference_id}/metrics", params=query).json()["points"]
            assert [p["value"] for p in straight] == [p["value"] for p in resumed]
    finally:
        live.stop()
