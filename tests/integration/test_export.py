"""GET /jobs/{id}/export: ONNX checked with onnxruntime, torch.export archives, model cards."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from safetensors import safe_open

from tests.models.fixtures import synthetic_digits
from tests.utils.live_server import LiveServer
from tests.utils.trained_server import start_trained

IMAGES, _ = synthetic_digits(4, seed=7)
# Real inputs per model: the tensors GET /v2/models/{name} declares.
INPUTS = {
    "linear": {"x": np.array([[1.0], [4.0], [-2.5]], dtype=np.float32)},
    "logistic_hours": {"hours": np.array([[1.0], [2.5], [4.0]], dtype=np.float32)},
    "mnist_mlp": {"image": IMAGES},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict]]:
    server, ids = start_trained(tmp_path_factory.mktemp("export"))
    yield server, ids
    server.stop()


@pytest.fixture
def http(trained: tuple[LiveServer, dict]) -> Iterator[httpx.Client]:
    with trained[0].client() as client:
        yield client


def served_outputs(http: httpx.Client, model: str, job_id: int) -> dict[str, np.ndarray]:
    """What the service's own PyTorch forward answers (the v2 route, JSON tensors)."""
    inputs = [
        {
            "name": n,
            "shape": list(a.shape),
            "datatype": "UINT8" if a.dtype == np.uint8 else "FP32",
            "data": a.reshape(-1).tolist(),
        }
        for n, a in INPUTS[model].items()
    ]
    response = http.post(f"/v2/models/{model}/versions/{job_id}/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    return {
        o["name"]: np.array(o["data"]).reshape(o["shape"])
        for o in response.json()["outputs"]
        if o["datatype"] != "BYTES"
    }


def download(http: httpx.Client, job_id: int, export_format: str) -> httpx.Response:
    response = http.get(f"/jobs/{job_id}/export", params={"format": export_format}, timeout=120)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("model", sorted(INPUTS))
def test_onnx_export_answers_like_pytorch_in_onnxruntime(
    http: httpx.Client, trained: tuple[LiveServer, dict], model: str
) -> None:
    job_id = trained[1][model]
    response = download(http, job_id, "onnx")
    assert f"{model}-job{job_id}.onnx" in response.headers["content-disposition"]
    session = onnxruntime.InferenceSession(response.content)
    names = [o.name for o in session.get_outputs()]
    results = dict(zip(names, session.run(None, INPUTS[model]), strict=True))
    expected = served_outputs(http, model, job_id)
    assert set(results) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(results[name], value, rtol=0, atol=1e-5, err_msg=name)

    card = json.loads(
        {p.key: p.value for p in onnx.load_from_string(response.content).metadata_props}[
            "torchkiln_model_card"
        ]
    )
    assert card["model"] == model and card["job_id"] == job_id and card["format"] == "onnx"
    assert [t["name"] for t in card["tensors"]["inputs"]] == list(INPUTS[model])
    assert "train_loss" in card["metrics"] and card["lineage"]["seed"] is not None
    assert card["aliases"] == ["production"]


def test_torch_export_archive_loads_and_answers(
    http: httpx.Client, trained: tuple[LiveServer, dict]
) -> None:
    job_id = trained[1]["mnist_mlp"]
    response = download(http, job_id, "torch_export")
    extra = {"model_card.json": ""}
    program = torch.export.load(io.BytesIO(response.content), extra_files=extra)
    with torch.no_grad():
        probabilities, label = program.module()(torch.from_numpy(IMAGES))
    expected = served_outputs(http, "mnist_mlp", job_id)
    np.testing.assert_allclose(probabilities.numpy(), expected["probabilities"], atol=1e-5)
    assert label.tolist() == expected["label"].tolist()
    card = json.loads(extra["model_card.json"])
    assert card["classes"] == [str(d) for d in range(10)] and card["format"] == "torch_export"
    assert "mean" in card["preprocessing"]


def test_safetensors_carries_the_card_and_bad_formats_are_422(
    http: httpx.Client, trained: tuple[LiveServer, dict], tmp_path
) -> None:
    job_id = trained[1]["linear"]
    path = tmp_path / "w.safetensors"
    path.write_bytes(download(http, job_id, "safetensors").content)
    with safe_open(str(path), framework="pt") as handle:
        card = json.loads(handle.metadata()["model_card"])
    assert card["model"] == "linear" and card["tensors"]["outputs"][0]["name"] == "y"
    assert http.get(f"/jobs/{job_id}/export", params={"format": "pickle"}).status_code == 422
    assert http.get("/jobs/99999/export", params={"format": "onnx"}).status_code == 404
