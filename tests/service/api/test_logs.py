"""GET /jobs/{id}/logs: the worker's JSON lines for one job, paged by line number."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from torchkiln.service.store.checkpoint_files import job_log_path
from torchkiln.service.store.settings import Settings


def test_unknown_job_is_404_and_no_file_is_empty(client: TestClient) -> None:
    assert client.get("/jobs/999/logs").status_code == 404
    assert client.get(f"/jobs/{2**40}/logs").status_code == 404
    job_id = client.post("/jobs", json={"model": "linear"}).json()["id"]
    body = client.get(f"/jobs/{job_id}/logs").json()
    assert body == {"job_id": job_id, "lines": [], "next_since": 0}


def test_lines_page_by_since_and_limit(client: TestClient, settings: Settings) -> None:
    job_id = client.post("/jobs", json={"model": "linear"}).json()["id"]
    path = job_log_path(settings.artifacts_dir, job_id)
    path.parent.mkdir(parents=True)
    entries = [{"message": f"line {i}", "job_id": job_id} for i in range(5)]
    # The last line is still being written: it is not served until its newline lands.
    path.write_text("".join(json.dumps(e) + "\n" for e in entries) + "not json\n" + '{"mess')
    first = client.get(f"/jobs/{job_id}/logs", params={"limit": 2}).json()
    assert [line["message"] for line in first["lines"]] == ["line 0", "line 1"]
    rest = client.get(f"/jobs/{job_id}/logs", params={"since": first["next_since"]}).json()
    assert [line["message"] for line in rest["lines"]] == [
        "line 2",
        "line 3",
        "line 4",
        "not json",
    ]
    assert rest["next_since"] == 6
    done = client.get(f"/jobs/{job_id}/logs", params={"since": 6}).json()
    assert done["lines"] == [] and done["next_since"] == 6
