"""Upload predictions without a query string go straight to the endpoint, answering alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.models.image_factory import encode, seven
from tests.utils.seeded_jobs import seed_mlp_job
from torchkiln.service.api.app import create_app
from torchkiln.service.api.direct_routes import DirectRoute
from torchkiln.service.store.settings import Settings

FILES = {"file": ("seven.png", encode(seven(), "PNG"), "image/png")}


@pytest.fixture
def served(settings: Settings) -> Settings:
    settings.api_key = SecretStr("s3cret")
    seed_mlp_job(settings)
    return settings


@pytest.fixture
def keyed(served: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(served), headers={"Authorization": "Bearer s3cret"}) as client:
        yield client


def test_the_direct_route_answers_as_the_api_route_does(keyed: TestClient) -> None:
    direct = keyed.post("/predict/mnist", files=FILES)
    routed = keyed.post("/predict/mnist?alias=production", files=FILES)
    assert direct.status_code == routed.status_code == 200
    assert direct.json() == routed.json()
    assert direct.json()["alias"] == "production" and direct.json()["job_id"] == 1
    pixels = keyed.post("/predict/mnist", json={"image": [[0] * 28] * 28})
    assert pixels.status_code == 200 and pixels.json()["job_id"] == 1


def test_it_checks_the_api_key(served: Settings) -> None:
    with TestClient(create_app(served)) as client:
        # No body, so KeyBeforeBody lets it through: the route's own check answers.
        empty = {"content-type": "multipart/form-data; boundary=x", "content-length": "0"}
        refused = client.post("/predict/mnist", headers=empty)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        wrong = client.post("/predict/mnist", headers={**empty, "Authorization": "Bearer no"})
        assert wrong.status_code == 401
        basic = client.post("/predict/mnist", headers={**empty, "Authorization": "Basic s3cret"})
        assert basic.status_code == 401
        assert client.post("/predict/mnist", files=FILES).status_code == 401


def test_query_strings_and_other_methods_take_fastapis_way(keyed: TestClient) -> None:
    invalid = keyed.post("/predict/mnist?job_id=0", files=FILES)
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["query", "job_id"]
    # With both, the alias must name that job: FastAPI's way reads both.
    both = keyed.post("/predict/mnist?job_id=1&alias=production", files=FILES)
    assert both.status_code == 200 and both.json()["alias"] == "production", both.text
    assert keyed.post("/predict/mnist?job_id=1", files=FILES).json()["alias"] is None
    listed = keyed.get("/predict/mnist")
    assert listed.status_code == 405


def test_errors_answer_as_on_every_route(keyed: TestClient) -> None:
    corrupt = keyed.post("/predict/mnist", files={"file": ("d.png", b"\x89PNG broken")})
    assert corrupt.status_code == 422 and "damaged" in corrupt.json()["detail"]
    foreign = keyed.post("/predict/mnist", content=b"x", headers={"content-type": "text/csv"})
    assert foreign.status_code == 415
    nothing = keyed.post("/predict/cifar10", files=FILES)
    assert nothing.status_code == 409 and "no trained" in nothing.json()["detail"]


def test_the_upload_routes_come_first_and_keep_their_docs(keyed: TestClient) -> None:
    app = keyed.app
    direct = [route for route in app.router.routes[:8] if isinstance(route, DirectRoute)]
    assert {route.path for route in direct} >= {"/predict/mnist", "/predict/mnist_mlp"}
    assert app.url_path_for("predict_mnist") == "/predict/mnist"  # type: ignore[attr-defined]
    operation = keyed.get("/openapi.json").json()["paths"]["/predict/mnist"]["post"]
    assert {p["name"] for p in operation["parameters"]} == {"job_id", "alias"}
