"""The sequential model over HTTP: schemas, 422s at submit, summary, presets, a served job."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.models.fixtures import synthetic_digits, write_idx
from tests.models.image_factory import encode, seven
from tests.service.api.test_datasets import png, upload, zipped
from tests.utils.job_runs import perform_next_job
from torchkiln.models import REGISTRY
from torchkiln.models.common.layers import KIND_BY_NAME
from torchkiln.service.store.db import make_engine
from torchkiln.service.store.settings import Settings

CONV = {"type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1}
BROKEN = [
    CONV,
    {"type": "maxpool2d", "kernel_size": 4},
    {"type": "flatten"},
    {"type": "linear", "in_features": 1024, "out_features": 10},
]
SMALL_MNIST = [
    {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"type": "relu"},
    {"type": "maxpool2d", "kernel_size": 4},
    {"type": "flatten"},
    {"type": "linear", "out_features": 10},
]


def test_models_shows_every_layer_types_schema(client: TestClient) -> None:
    entry = client.get("/models/sequential").json()
    layers = entry["options_schema"]["properties"]["layers"]
    assert set(layers["items"]["discriminator"]["mapping"]) == {*KIND_BY_NAME, "residual"}
    conv = entry["options_schema"]["$defs"]["Conv2dLayer"]
    assert {"out_channels", "kernel_size", "stride", "padding_mode"} <= set(conv["properties"])
    assert conv["required"] == ["type", "out_channels", "kernel_size"]
    assert entry["defaults"]["data"] == "mnist" and entry["defaults"]["layers"][0]["type"] == (
        "flatten"
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"data": "cifar10", "layers": BROKEN},
            "layers[3] (linear): expects 1024 input features, receives 4096 (64×8×8)",
        ),
        ({"data": "mnist", "layers": SMALL_MNIST[:-1]}, "mnist needs 10 class scores"),
        ({"data": "mnist", "layers": [{"type": "relu"}] * 65}, "more than 64 layers"),
        ({"data": "mnist", "layers": [{"type": "nope"}]}, "does not match any of the expected"),
        ({"data": "mnist", "layers": [{"type": "linear", "out_features": 10, "x": 1}]}, "Extra"),
    ],
)
def test_a_list_that_cannot_work_is_a_422_at_submit(
    client: TestClient, params: dict[str, Any], message: str
) -> None:
    response = client.post("/jobs", json={"model": "sequential", "params": params})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"][:3] == ["body", "params", "layers"]
    assert message in detail["msg"]
    summary = client.post("/models/sequential/summary", json=params)
    assert summary.status_code == 422 and message in summary.json()["detail"][0]["msg"]


def test_summary_answers_without_training(client: TestClient) -> None:
    body = {
        "data": "cifar10",
        "layers": [CONV, {"type": "flatten"}, BROKEN[-1] | {"in_features": None}],
    }
    summary = client.post("/models/sequential/summary", json=body)
    assert summary.status_code == 200, summary.text
    figures = summary.json()
    assert [layer["output_shape"] for layer in figures["layers"]] == [[64, 32, 32], [65536], [10]]
    assert figures["parameters"] == (27 * 64 + 64) + (65536 * 10 + 10)
    assert figures["flops"] == 2 * 32 * 32 * 64 * 27 + 2 * 65536 * 10
    assert figures["checkpoint_bytes"] == 4 * figures["parameters"]
    assert client.post("/models/linear/summary", json={}).status_code == 404
    assert client.post("/models/nope/summary", json={}).status_code == 404


def test_a_sequential_job_links_to_its_stored_networks_summary(client: TestClient) -> None:
    # A layer option set by path (as a sweep does) is in the stored params and the summary.
    params = {"data": "mnist", "layers": SMALL_MNIST, "layers[0].out_channels": 6}
    job = client.post("/jobs", json={"model": "sequential", "params": params}).json()
    assert client.get(f"/jobs/{job['id']}").json()["links"] == {
        "summary": f"/jobs/{job['id']}/summary"
    }
    summary = client.get(job["links"]["summary"])
    assert summary.status_code == 200, summary.text
    body = {**params, "layers": [SMALL_MNIST[0] | {"out_channels": 6}, *SMALL_MNIST[1:]]}
    assert summary.json() == client.post("/models/sequential/summary", json=body).json()
    assert summary.json()["layers"][0]["output_shape"] == [6, 28, 28]
    linear = client.post("/jobs", json={"model": "linear", "params": {"epochs": 1}}).json()
    assert linear["links"] == {"summary": None}
    refused = client.get(f"/jobs/{linear['id']}/summary")
    assert refused.status_code == 404 and "sequential" in refused.json()["detail"]
    assert client.get("/jobs/999999/summary").status_code == 404


def test_presets_are_the_built_in_networks(client: TestClient) -> None:
    presets = client.get("/models/sequential/presets").json()
    assert presets["count"] == 4
    for preset in presets["data"]:
        summary = client.post("/models/sequential/summary", json=preset["params"]).json()
        built_in = REGISTRY[preset["mirrors"]]
        network = built_in.build(built_in.options())
        assert summary["parameters"] == sum(p.numel() for p in network.parameters())
    assert client.get("/models/linear/presets").status_code == 404


def run_next_job(settings: Settings) -> None:
    """Claim and train the queued job in this process, as a worker would."""
    engine = make_engine(settings)
    perform_next_job(settings, engine, beat_interval_s=5.0)
    engine.dispose()


def test_a_trained_diabetes_network_answers_json_and_refuses_files(
    client: TestClient, settings: Settings
) -> None:
    layers = [
        {"type": "linear", "out_features": 4},
        {"type": "tanh"},
        {"type": "linear", "out_features": 1},
    ]
    params = {"data": "diabetes", "layers": layers, "epochs": 2}
    job = client.post("/jobs", json={"model": "sequential", "params": params}).json()
    assert job["params"]["layers"][0] == {
        "type": "linear",
        "in_features": None,
        "out_features": 4,
        "bias": True,
    }
    run_next_job(settings)
    assert client.get(f"/jobs/{job['id']}").json()["status"] == "succeeded"
    answer = client.post("/predict/sequential", json={"features": [[0.0] * 8, [0.5] * 8]})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["probabilities"]) == 2
    files = {"file": ("seven.png", encode(seven(), "PNG"), "image/png")}
    refused = client.post("/predict/sequential", files=files)
    assert refused.status_code == 422 and "diabetes features" in refused.json()["detail"]
    wrong = client.post("/predict/sequential", json={"image": [[0] * 28] * 28})
    assert wrong.status_code == 422 and "diabetes" in wrong.json()["detail"]


def test_a_trained_mnist_network_reads_uploads_as_mnist_mlp_does(
    client: TestClient, settings: Settings
) -> None:
    raw = settings.data_dir / "MNIST" / "raw"
    for prefix, count, seed in (("train", 80, 1), ("t10k", 20, 2)):
        images, labels = synthetic_digits(count, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    params = {"data": "mnist", "layers": SMALL_MNIST, "epochs": 1, "batch_size": 16}
    job_id = client.post("/jobs", json={"model": "sequential", "params": params}).json()["id"]
    run_next_job(settings)
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    files = {"file": ("seven.png", encode(seven(), "PNG"), "image/png")}
    answer = client.post("/predict/sequential", files=files)
    assert answer.status_code == 200, answer.text
    assert 0 <= answer.json()["predictions"][0]["digit"] <= 9
    pixels = client.post("/predict/sequential", json={"image": [[0] * 28] * 28})
    assert pixels.status_code == 200 and pixels.json()["job_id"] == job_id


def test_a_sweep_searches_layer_widths_and_dropout(client: TestClient) -> None:
    layers = [
        {"type": "linear", "out_features": 6},
        {"type": "dropout", "p": 0.0},
        {"type": "linear", "out_features": 1},
    ]
    body = {
        "model": "sequential",
        "params": {"data": "diabetes", "layers": layers, "epochs": 2},
        "space": {"layers[0].out_features": [4, 8], "layers[1].p": {"values": [0.1, 0.2]}},
    }
    created = client.post("/sweeps", json=body)
    assert created.status_code == 201, created.text
    board = client.get(f"/sweeps/{created.json()['id']}").json()["leaderboard"]
    widths = sorted(trial["params"]["layers[0].out_features"] for trial in board)
    assert widths == [4, 8]
    for trial in board:
        params = client.get(f"/jobs/{trial['job_id']}").json()["params"]
        assert params["layers"][0]["out_features"] == trial["params"]["layers[0].out_features"]
        assert params["layers"][1]["p"] == trial["params"]["layers[1].p"]
    bad = {**body, "space": {"layers[7].p": [0.1]}}
    refused = client.post("/sweeps", json=bad)
    assert refused.status_code == 422 and "no such layer" in refused.text


def test_init_from_starts_a_sequential_job_from_an_earlier_ones_weights(
    client: TestClient, settings: Settings
) -> None:
    params = {"data": "diabetes", "epochs": 1}
    first = client.post("/jobs", json={"model": "sequential", "params": params}).json()["id"]
    run_next_job(settings)
    second = client.post(
        "/jobs", json={"model": "sequential", "params": {**params, "init_from": first}}
    ).json()["id"]
    run_next_job(settings)
    assert client.get(f"/jobs/{second}").json()["status"] == "succeeded"
    wider = {**params, "init_from": first, "layers[0].out_features": 7}
    third = client.post("/jobs", json={"model": "sequential", "params": wider}).json()["id"]
    run_next_job(settings)
    failed = client.get(f"/jobs/{third}").json()
    assert failed["status"] == "failed" and "size mismatch" in failed["error"]


def test_an_uploaded_dataset_id_is_summarised_submitted_and_held(client: TestClient) -> None:
    members = {f"pets/{c}/{i}.png": png(60 * i, (6, 6)) for c in ("cat", "dog") for i in range(3)}
    dataset = upload(client, zipped(members), "pets.zip").json()
    layers = [{"type": "flatten"}, {"type": "linear", "out_features": 2}]
    params = {"data": dataset["id"], "image_size": 8, "layers": layers}
    summary = client.post("/models/sequential/summary", json=params)
    assert summary.status_code == 200, summary.text
    assert summary.json()["input_shape"] == [1, 8, 8]
    wide = {**params, "layers": [layers[0], {"type": "linear", "out_features": 3}]}
    refused = client.post("/jobs", json={"model": "sequential", "params": wide})
    assert refused.status_code == 422 and "needs 2 class scores" in refused.text
    assert refused.json()["detail"][0]["loc"][:3] == ["body", "params", "layers"]
    job = client.post("/jobs", json={"model": "sequential", "params": params})
    assert job.status_code == 201, job.text
    lineage = job.json()["params"]["lineage"]["datasets"]
    assert [(d["id"], d["name"], d["role"]) for d in lineage] == [
        (dataset["id"], "pets.zip", "train")
    ]
    deleted = client.delete(f"/datasets/{dataset['id']}")
    assert deleted.status_code == 409, deleted.text


def test_a_network_on_an_uploaded_table_trains_and_answers_raw_rows(
    client: TestClient, settings: Settings
) -> None:
    lines = ["size,colour,sold"] + [
        f"{i},{('red', 'blue')[i % 2]},{'yes' if i > 20 else 'no'}" for i in range(40)
    ]
    dataset = upload(client, "\n".join(lines).encode(), "sales.csv").json()
    layers = [{"type": "linear", "out_features": 4}, {"type": "relu"}]
    params = {"data": dataset["id"], "layers": layers, "epochs": 2}
    refused = client.post("/jobs", json={"model": "sequential", "params": params})
    assert "needs target: one of ['size', 'colour', 'sold']" in refused.text
    params = {
        **params,
        "target": "sold",
        "layers": [*layers, {"type": "linear", "out_features": 1}],
    }
    job_id = client.post("/jobs", json={"model": "sequential", "params": params}).json()["id"]
    run_next_job(settings)
    assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"
    rows = {"rows": [{"size": 30, "colour": "red"}, {"size": None, "colour": "green"}]}
    answer = client.post(f"/predict/sequential?job_id={job_id}", json=rows)
    assert answer.status_code == 200, answer.text
    assert [p["label"] in {"no", "yes"} for p in answer.json()["predictions"]] == [True, True]
    files = {"file": ("seven.png", encode(seven(), "PNG"), "image/png")}
    image = client.post(f"/predict/sequential?job_id={job_id}", files=files)
    assert image.status_code == 422 and "table rows" in image.json()["detail"]
