"""The catalogue endpoint and prediction input validation (no trained model needed)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from torchkiln.models import REGISTRY
from torchkiln.service.api.app import create_app
from torchkiln.service.store.settings import Settings

CORE_MODELS = {"linear", "quadratic", "linear_noisy", "logistic_hours", "clusters2d"}


def test_models_lists_schemas_and_defaults(client: TestClient) -> None:
    listing = client.get("/models").json()
    names = {m["name"] for m in listing["data"]}
    assert CORE_MODELS <= names and names == set(REGISTRY)
    linear = next(m for m in listing["data"] if m["name"] == "linear")
    assert linear["defaults"]["epochs"] == 1000
    assert "bias" in linear["options_schema"]["properties"]
    assert linear["inputs_schema"]["properties"]["x"]["type"] == "array"
    optimizers = linear["options_schema"]["properties"]["optimizer"]["enum"]
    assert set(optimizers) == {
        "sgd",
        "adam",
        "adagrad",
        "adamax",
        "asgd",
        "lbfgs",
        "rmsprop",
        "rprop",
    }
    assert client.get("/models/linear").json() == linear
    assert client.get("/models/nope").status_code == 404


def test_predict_without_a_trained_model_is_409_naming_the_job_to_run(
    client: TestClient,
) -> None:
    response = client.post("/predict/logistic_hours", json={"hours": [1.0]})
    assert response.status_code == 409
    assert 'POST /jobs {"model": "logistic_hours"}' in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/predict/linear", '{"x": [NaN]}'),
        ("/predict/linear", '{"x": [Infinity]}'),
        ("/predict/linear", '{"x": 4.0}'),
        ("/predict/linear", '{"x": ["four"]}'),
        ("/predict/linear", '{"x": []}'),
        ("/predict/linear", '{"y": [1.0]}'),
        ("/predict/logistic_hours", '{"hours": [[1.0]]}'),
        ("/predict/clusters2d", '{"points": [[1.0, 2.0, 3.0]]}'),
        ("/predict/clusters2d", '{"points": [1.0, 2.0]}'),
    ],
)
def test_bad_prediction_inputs_are_422(client: TestClient, path: str, body: str) -> None:
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"]


def test_predict_with_unknown_job_is_404(client: TestClient) -> None:
    response = client.post("/predict/linear", params={"job_id": 42}, json={"x": [1.0]})
    assert response.status_code == 404


def test_api_key_guards_everything_but_health(settings: Settings) -> None:
    keyed = Settings(**{**settings.model_dump(), "api_key": "s3cret"})
    with TestClient(create_app(keyed)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/jobs").status_code == 401
        assert client.get("/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = client.get("/jobs", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
