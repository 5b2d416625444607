"""Versions, aliases, best/last checkpoints, retention, deletion and export over real HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load

from tests.utils.http_jobs import predict, submit
from tests.utils.live_server import LiveServer, wait_for_job
from torchkiln.models import REGISTRY

FEATURES = [
    [0.1, -0.2, 0.3, 0.0, -0.5, 0.2, -0.9, 0.4],
    [-0.6, 0.5, 0.1, -0.1, 0.3, -0.4, 0.2, 0.0],
]


@pytest.fixture(scope="module")
def watched_job(http_module: httpx.Client) -> dict:
    """A diabetes run that keeps its 2 newest and 1 best checkpoints by val_loss."""
    job_id = submit(
        http_module,
        "diabetes",
        epochs=60,
        optimizer="adam",
        lr=0.05,
        checkpoint_every=10,
        watch={"metric": "val_loss", "mode": "min"},
        keep_last=2,
        keep_best=1,
    )
    job = wait_for_job(http_module, job_id, timeout_s=180)
    assert job["status"] == "succeeded", job
    return job


@pytest.fixture(scope="module")
def http_module(server: LiveServer) -> httpx.Client:
    with server.client() as client:
        yield client  # type: ignore[misc]


def test_best_epoch_is_the_argmin_of_val_loss(http: httpx.Client, watched_job: dict) -> None:
    points = http.get(f"/jobs/{watched_job['id']}/metrics", params={"name": "val_loss"}).json()[
        "points"
    ]
    values = [(p["value"], p["epoch"]) for p in points]
    best_value, best_epoch = min(values)
    assert watched_job["best_epoch"] == best_epoch
    assert watched_job["best_value"] == pytest.approx(best_value)


def test_retention_keeps_exactly_what_it_promised(server: LiveServer, watched_job: dict) -> None:
    folder = server.settings.artifacts_dir / "jobs" / str(watched_job["id"])
    names = sorted(p.name for p in folder.iterdir() if p.suffix == ".pt")
    best = f"epoch-{watched_job['best_epoch']:06d}.best.pt"
    assert names == sorted(["epoch-000050.pt", "epoch-000060.pt", best])
    assert watched_job["disk_bytes"] == sum((folder / n).stat().st_size for n in names)


def test_export_is_the_best_checkpoint_and_predicts_like_the_service(
    http: httpx.Client, watched_job: dict, tmp_path: Path
) -> None:
    job_id = watched_job["id"]
    response = http.get(f"/jobs/{job_id}/checkpoint")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert f"diabetes-job{job_id}.safetensors" in response.headers["content-disposition"]
    path = tmp_path / "weights.safetensors"
    path.write_bytes(response.content)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["model"] == "diabetes" and metadata["job_id"] == str(job_id)
    assert metadata["kind"] == "best" and int(metadata["epoch"]) == watched_job["best_epoch"]

    spec = REGISTRY["diabetes"]
    net = spec.build(spec.parse_options(json.loads(metadata["options"])))
    net.load_state_dict(load(response.content))
    net.eval()
    with torch.inference_mode():
        mine = spec.postprocess(net(spec.preprocess(spec.inputs(features=FEATURES))))
    served = predict(http, "diabetes", {"features": FEATURES}, job_id=job_id)
    assert served["job_id"] == job_id
    for key, value in mine.items():
        assert served[key] == pytest.approx(value, abs=1e-6)


def test_alias_moves_and_the_next_prediction_follows(http: httpx.Client) -> None:
    doubled = submit(http, "linear", epochs=500)
    assert wait_for_job(http, doubled)["status"] == "succeeded"  # linear's first: production
    tripled = submit(http, "linear", epochs=500, data={"x": [1, 2, 3], "y": [3, 6, 9]})
    assert wait_for_job(http, tripled)["status"] == "succeeded"

    assert http.put("/models/linear/aliases/champion", json={"job_id": doubled}).status_code == 200
    first = predict(http, "linear", {"x": [4.0]}, alias="champion")
    assert first["job_id"] == doubled and first["y"][0] == pytest.approx(8.0, abs=0.1)
    assert http.put("/models/linear/aliases/champion", json={"job_id": tripled}).status_code == 200
    moved = predict(http, "linear", {"x": [4.0]}, alias="champion")
    assert moved["job_id"] == tripled and moved["y"][0] == pytest.approx(12.0, abs=0.1)

    listed = http.get("/models/linear/aliases").json()
    assert [(a["alias"], a["job_id"]) for a in listed["data"]] == [
        ("champion", tripled),
        ("production", doubled),
    ]
    versions = http.get("/models/linear/versions").json()
    by_id = {v["job_id"]: v for v in versions["data"]}
    assert by_id[tripled]["aliases"] == ["champion"] and "train_loss" in by_id[tripled]["metrics"]
    assert versions["disk_bytes"] >= by_id[tripled]["disk_bytes"] > 0

    refused = http.delete(f"/jobs/{tripled}")
    assert refused.status_code == 409 and "champion" in refused.json()["detail"]
    serving = http.delete(f"/jobs/{doubled}")
    assert serving.status_code == 409 and "production" in serving.json()["detail"]
    assert (
        http.put("/models/linear/aliases/production", json={"job_id": tripled}).status_code == 200
    )
    assert http.delete(f"/jobs/{doubled}").status_code == 204
    assert http.get(f"/jobs/{doubled}").status_code == 404
    assert http.get("/usage").json()["models"]["linear"] > 0

    assert http.delete("/models/linear/aliases/champion").status_code == 204
    gone = http.post("/predict/linear", json={"x": [1.0]}, params={"alias": "champion"})
    assert gone.status_code == 404
    assert "production" in http.delete(f"/jobs/{tripled}").json()["detail"]


def test_alias_and_delete_refusals(http: httpx.Client) -> None:
    running = submit(http, "linear_noisy", epochs=100_000)
    wait_for_job(http, running, {"running"})
    busy = http.delete(f"/jobs/{running}")
    assert busy.status_code == 409 and "cancel it first" in busy.json()["detail"]
    assert http.put("/models/linear_noisy/aliases/x", json={"job_id": running}).status_code == 422
    http.post(f"/jobs/{running}/cancel")
    wait_for_job(http, running)
    assert http.put("/models/linear/aliases/1bad", json={"job_id": running}).status_code == 422
    assert http.put("/models/linear/aliases/ok", json={"job_id": running}).status_code == 422
    assert http.put("/models/linear/aliases/ok", json={"job_id": 99999}).status_code == 404
    assert http.delete("/jobs/99999").status_code == 404
    assert http.get(f"/jobs/{running}").json()["disk_bytes"] >= 0
