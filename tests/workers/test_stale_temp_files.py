"""Half-written checkpoints a killed write left: counted by /usage, removed by the job's worker."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.utils.job_runs import perform_next_job
from torchkiln.service.store.checkpoint_files import job_dir
from torchkiln.service.store.settings import Settings


def test_a_killed_writes_temp_file_is_counted_then_removed(
    client: TestClient, settings: Settings
) -> None:
    job_id = client.post("/jobs", json={"model": "linear", "params": {"epochs": 3}}).json()["id"]
    # What a SIGKILL between mkstemp and os.replace leaves behind.
    leftover = job_dir(settings.artifacts_dir, job_id) / ".epoch-000002.pt.k1ll3d.tmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"\0" * 1000)
    usage = client.get("/usage").json()
    assert usage["temp_bytes"] == 1000 and usage["models"] == {"linear": 1000}

    engine = client.app.state.engine  # type: ignore[attr-defined]
    assert perform_next_job(settings, engine).id == job_id

    assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"
    assert not leftover.exists()
    usage = client.get("/usage").json()
    assert usage["temp_bytes"] == 0 and usage["disk_bytes"] == usage["models"]["linear"] > 0
