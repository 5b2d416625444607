"""Two hosts, no shared volume: a worker writes a job's checkpoints to S3 (moto's server), and
an API with an empty artifacts folder of its own serves, exports and logs the job from there;
a dataset uploaded through one host trains on another."""

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
from torchkiln.service.store.artifact_store import CorruptArtifact
from torchkiln.service.store.dataset_objects import fetch_dataset, safe_relative
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


def table_csv(rows: int = 60) -> bytes:
    lines = ["x1,x2,label"]
    lines += [f"{i % 7},{(i * 3) % 11},{'yes' if i % 7 > 3 else 'no'}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def test_a_worker_on_another_host_trains_on_a_dataset_uploaded_through_s3(
    tmp_path: Path, bucket_url: str
) -> None:
    """The API host copies an upload to the bucket; a worker with an empty datasets folder of
    its own fetches it (sha256-checked), trains, and a deleted dataset leaves the bucket."""
    database = f"sqlite:///{tmp_path / 'kiln.db'}"
    api_settings = make_settings(tmp_path / "api", database).model_copy(
        update={"artifacts_url": bucket_url}
    )
    worker_settings = make_settings(tmp_path / "worker", database).model_copy(
        update={"artifacts_url": bucket_url}
    )
    store = api_settings.artifact_store()
    with TestClient(create_app(api_settings)) as client:
        uploaded = client.post("/datasets", files={"file": ("t.csv", table_csv())})
        assert uploaded.status_code == 201, uploaded.text
        dataset_id = uploaded.json()["id"]
        keys = store.list_prefix(f"datasets/{dataset_id}")
        assert f"datasets/{dataset_id}/manifest.json" in keys
        assert f"datasets/{dataset_id}/schema.json" in keys

        params = {"dataset": dataset_id, "target": "label", "epochs": 2}
        job_id = client.post("/jobs", json={"model": "tabular", "params": params}).json()["id"]
        assert not (worker_settings.datasets_dir / str(dataset_id)).exists()
        engine = make_engine(worker_settings)
        assert perform_next_job(worker_settings, engine).id == job_id
        engine.dispose()
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "succeeded", job["error"]
        api_folder = api_settings.datasets_dir / str(dataset_id)
        worker_folder = worker_settings.datasets_dir / str(dataset_id)
        for path in api_folder.rglob("*"):
            if path.is_file():
                twin = worker_folder / path.relative_to(api_folder)
                assert twin.read_bytes() == path.read_bytes()
        assert not list(worker_settings.datasets_dir.glob(".fetch-*"))  # no staging left
        answer = client.post(
            f"/predict/tabular?job_id={job_id}", json={"rows": [{"x1": 6, "x2": 1}]}
        )
        assert answer.status_code == 200, answer.text

        # Bytes changed in the bucket behind the manifest: a third host refuses them.
        (table,) = [k for k in keys if k.endswith(".parquet")]
        store.put_bytes(table, store.get_bytes(table) + b"rot")
        third = tmp_path / "third" / "datasets"
        with pytest.raises(CorruptArtifact, match="does not match its recorded sha256"):
            fetch_dataset(store, third, dataset_id)
        assert not third.exists() or not any(third.iterdir())

        assert client.delete(f"/datasets/{dataset_id}").status_code == 204
        assert store.list_prefix(f"datasets/{dataset_id}") == []


def test_an_upload_the_bucket_refuses_keeps_nothing(tmp_path: Path, s3_env: dict[str, str]) -> None:
    """A bucket that does not exist: 503 with the reason, and no dataset row or files."""
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'kiln.db'}").model_copy(
        update={"artifacts_url": "s3://no-such-bucket-here/prefix"}
    )
    with TestClient(create_app(settings)) as client:
        refused = client.post("/datasets", files={"file": ("t.csv", table_csv())})
        assert refused.status_code == 503, refused.text
        assert "could not be copied to the object store" in refused.json()["detail"]
        assert client.get("/datasets").json()["count"] == 0
    assert not any(settings.datasets_dir.iterdir())


def test_a_manifest_naming_a_file_outside_the_folder_is_refused() -> None:
    for name in ("../escape", "/abs", ""):
        with pytest.raises(CorruptArtifact, match="outside its folder"):
            safe_relative(name)
    assert safe_relative("images/0/a.png").as_posix() == "images/0/a.png"
