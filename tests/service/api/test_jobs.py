"""Job routes over the app (no workers): validation, listing, queue order, cancel."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


def submit(client: TestClient, **body: object) -> dict:
    response = client.post("/jobs", json={"model": "linear", **body})
    assert response.status_code == 201, response.text
    return response.json()


def test_submit_fills_defaults_and_queues(client: TestClient) -> None:
    job = submit(client, params={"epochs": 5})
    assert job["status"] == "queued"
    assert job["params"]["epochs"] == 5
    assert job["params"]["optimizer"] == "sgd"  # default filled in from the model's schema
    assert job["epochs"] == 5 and job["epoch"] == 0 and job["attempts"] == 0
    assert job["queue_position"] == 1
    assert job["device_requested"] == "auto" and job["device"] is None
    assert job["created_at"].endswith("Z") or "+00:00" in job["created_at"]


def test_unknown_model_is_422_naming_the_field(client: TestClient) -> None:
    response = client.post("/jobs", json={"model": "resnet9000"})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "model"]
    assert "linear" in error["msg"]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"lr": -1}, ["body", "params", "lr"]),
        ({"lr": "fast"}, ["body", "params", "lr"]),
        ({"epochs": 0}, ["body", "params", "epochs"]),
        ({"optimizer": "newton"}, ["body", "params", "optimizer"]),
        ({"loss": "bce"}, ["body", "params", "loss"]),
        ({"learning_rate": 0.1}, ["body", "params", "learning_rate"]),
        ({"data": {"x": [1, 2], "y": [1]}}, ["body", "params", "data"]),
        ({"data": {"x": [], "y": []}}, ["body", "params", "data", "x"]),
    ],
)
def test_bad_params_are_422_naming_the_field(
    client: TestClient, params: dict, loc: list[str]
) -> None:
    response = client.post("/jobs", json={"model": "linear", "params": params})
    assert response.status_code == 422, response.text
    assert loc in [e["loc"] for e in response.json()["detail"]]


def test_optimizer_argument_conflicts_say_what_to_fix(client: TestClient) -> None:
    response = client.post(
        "/jobs", json={"model": "linear", "params": {"optimizer": "lbfgs", "weight_decay": 0.1}}
    )
    assert response.status_code == 422
    assert "weight_decay is not supported" in response.text
    response = client.post(
        "/jobs", json={"model": "linear", "params": {"optimizer": "adam", "momentum": 0.9}}
    )
    assert response.status_code == 422
    assert "momentum applies to sgd and rmsprop" in response.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_422_not_500(client: TestClient, literal: str) -> None:
    body = '{"model": "linear", "params": {"lr": LITERAL}}'.replace("LITERAL", literal)
    response = client.post("/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "params", "lr"]


@pytest.mark.parametrize(
    "body",
    [
        {"model": "linear", "device": "tpu"},
        {"model": "linear", "priority": 10**6},
        {"model": "linear", "params": [1, 2]},
        {"params": {}},
        {"model": "linear", "colour": "red"},
    ],
)
def test_bad_envelope_is_422(client: TestClient, body: dict) -> None:
    assert client.post("/jobs", json=body).status_code == 422


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post("/jobs", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_list_is_newest_first_filtered_and_paginated(client: TestClient) -> None:
    ids = [submit(client)["id"] for _ in range(3)]
    ids.append(client.post("/jobs", json={"model": "quadratic"}).json()["id"])
    listing = client.get("/jobs").json()
    assert [j["id"] for j in listing["data"]] == ids[::-1]
    assert listing["count"] == 4
    page = client.get("/jobs", params={"limit": 2, "offset": 1}).json()
    assert [j["id"] for j in page["data"]] == ids[::-1][1:3] and page["count"] == 4
    only = client.get("/jobs", params={"model": "quadratic"}).json()
    assert [j["id"] for j in only["data"]] == [ids[3]]
    assert client.get("/jobs", params={"status": "running"}).json()["count"] == 0
    assert client.get("/jobs", params={"status": "bogus"}).status_code == 422


def test_queue_position_follows_priority_then_age(client: TestClient) -> None:
    low = submit(client)["id"]
    high = submit(client, priority=5)["id"]
    later = submit(client)["id"]
    positions = {j["id"]: j["queue_position"] for j in client.get("/jobs").json()["data"]}
    assert positions == {high: 1, low: 2, later: 3}
    assert client.get(f"/jobs/{later}").json()["queue_position"] == 3


def test_cancel_queued_job_at_once_then_409(client: TestClient) -> None:
    job_id = submit(client)["id"]
    cancelled = client.post(f"/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    again = client.post(f"/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]


def test_missing_job_is_404(client: TestClient) -> None:
    for path in ("/jobs/999", "/jobs/999/metrics"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "no job with id 999"}
    assert client.post("/jobs/999/cancel").status_code == 404


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
