"""Open Inference Protocol metadata, promote rules on POST /jobs and export without extras."""

from __future__ import annotations

import sys

import pytest
from fastapi.testclient import TestClient

from torchkiln.models import REGISTRY


def test_every_model_describes_its_tensors(client: TestClient) -> None:
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    for name in REGISTRY:
        metadata = client.get(f"/v2/models/{name}").json()
        assert metadata["name"] == name and metadata["versions"] == []
        assert metadata["inputs"] and metadata["outputs"]
        assert all(t["shape"][0] == -1 for t in metadata["inputs"] + metadata["outputs"])
    cifar = client.get("/v2/models/cifar10_cnn").json()
    assert {"name": "class", "datatype": "BYTES", "shape": [-1]} in cifar["outputs"]


def test_v2_errors_use_the_protocols_shape(client: TestClient) -> None:
    unready = client.get("/v2/models/linear/ready")
    assert unready.status_code == 409 and "no trained linear" in unready.json()["error"]
    assert client.get("/v2/models/nope").json() == {
        "error": f"unknown model 'nope'; models: {', '.join(sorted(REGISTRY))}"
    }
    bad_version = client.post("/v2/models/linear/versions/x/infer", json={})
    assert bad_version.status_code == 400 and set(bad_version.json()) == {"error"}
    truncated = client.post(
        "/v2/models/linear/infer",
        content=b'{"inputs": []}',
        headers={"Inference-Header-Content-Length": "999"},
    )
    assert truncated.status_code == 400 and "does not fit" in truncated.json()["error"]


def test_a_job_spec_takes_a_promote_rule(client: TestClient) -> None:
    rule = {"alias": "production", "if_better": "train_loss"}
    job = client.post("/jobs", json={"model": "linear", "promote": rule})
    assert job.status_code == 201 and job.json()["promote"] == {**rule, "mode": "min"}
    assert client.get(f"/jobs/{job.json()['id']}").json()["promote"]["alias"] == "production"
    for bad in ({"alias": "1bad"}, {"if_better": "w"}, {"alias": "x", "extra": 1}):
        assert client.post("/jobs", json={"model": "linear", "promote": bad}).status_code == 422


def test_onnx_export_without_the_extra_is_501_naming_it(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import now raises ImportError
    response = client.get("/jobs/1/export", params={"format": "onnx"})
    assert response.status_code == 501 and "torchkiln[export]" in response.json()["detail"]
