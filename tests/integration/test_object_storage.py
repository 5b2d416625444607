"""Two hosts, no shared volume: a worker writes a job's checkpoints to S3 (moto's server), and
an API with an empty artifacts folder of its own serves, exports and logs the job from there."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from safetensors.torch import load

from tests.conftest import make_settings
from tests.utils.job_runs import perform_next_job
from torchkiln.service.api.app import create_app
from torchkiln.service.store import artifact_store
from torchkiln.service.store.db import make_engine


def test_an_api_on_another_host_serves_a_checkpoint_from_s3(
    tmp_path: Path,
    bucket_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="torchkiln")  # the job's log lines
    monkeypatch.setattr(artifact_store, "REMOTE_STAMP_TTL_S", 0.0)  # no waiting on the marker
    database = f"sqlite:///{tmp_path / 'kiln.db'}"
    api_settings = make_settings(tmp_path / "api", database).model_copy(
        update={"artifacts_url": bucket_url}
    )
    worker_settings = make_settings(tmp_path / "worker", database).model_copy(
        update={"artifacts_url": bucket_url}
    )
    with TestClient(create_app(api_settings)) as client:
        assert client.post("/predict/linear", json={"x": [1.0]}).status_code == 409
        job_id = client.post("/jobs", json={"model": "linear", "params": {"epochs": 2}}).json()[
            "id"
        ]

        engine = make_engine(worker_settings)
        assert perform_next_job(worker_settings, engine).id == job_id
        engine.dispose()

        assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"
        answer = client.post("/predict/linear", json={"x": [1.0, 2.0]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["job_id"] == job_id and len(answer.json()["y"]) == 2
        # A third host's worker starts a job from the first one's weights, read from S3.
        tuned = client.post(
            "/jobs", json={"model": "linear", "params": {"epochs": 1, "init_from": job_id}}
        ).json()["id"]
        other = make_settings(tmp_path / "worker2", database).model_copy(
            update={"artifacts_url": bucket_url}
        )
        engine = make_engine(other)
        assert perform_next_job(other, engine).id == tuned
        engine.dispose()
        assert client.get(f"/jobs/{tuned}").json()["status"] == "succeeded"
        assert client.delete(f"/jobs/{tuned}").status_code == 204

        weights = client.get(f"/jobs/{job_id}/checkpoint")
        assert weights.status_code == 200 and set(load(weights.content)) == {"weight"}
        lines = client.get(f"/jobs/{job_id}/logs").json()["lines"]
        assert any("succeeded" in line["message"] for line in lines)

        store = api_settings.artifact_store()
        keys = store.list_prefix(f"jobs/{job_id}")
        assert f"jobs/{job_id}/log.jsonl" in keys and any(k.endswith(".pt") for k in keys)
        # Checkpoints only in the bucket: neither host's folder holds one.
        assert not list(tmp_path.rglob("*.pt"))
        assert not (tmp_path / "api" / "artifacts" / "jobs").exists()

        # Bytes changed behind the recorded sha256: refused, and said so.
        (checkpoint,) = [k for k in keys if k.endswith(".pt")]
        store.put_bytes(checkpoint, store.get_bytes(checkpoint) + b"rot")
        refused = client.get(f"/jobs/{job_id}/checkpoint")
        assert refused.status_code == 500
        expected = f"checkpoint {checkpoint} does not match its recorded sha256"
        assert refused.json()["detail"] == expected

        assert client.delete("/models/linear/aliases/production").status_code == 204
        assert client.delete(f"/jobs/{job_id}").status_code == 204
        assert store.list_prefix(f"jobs/{job_id}") == []
        assert client.post("/predict/linear", json={"x": [1.0]}).status_code in (404, 409)
