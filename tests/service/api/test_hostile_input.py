"""Hostile input from the outside test of issue 16: every one a 4xx with a JSON reason."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr

from torchkiln.models.common.images import (
    MAX_ASPECT_RATIO,
    DegenerateImage,
    ImageLimits,
    mnist_pixels,
)
from torchkiln.service.api.app import create_app
from torchkiln.service.store import jobs
from torchkiln.service.store.settings import Settings


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def small_budget(settings: Settings) -> Iterator[TestClient]:
    """A client whose requests may declare 2,000 pixels in all."""
    with TestClient(create_app(settings.model_copy(update={"max_request_pixels": 2000}))) as c:
        yield c


def test_a_one_pixel_wide_strip_is_refused_before_decoding(client: TestClient) -> None:
    strip = png(Image.new("L", (1, 20_000_000), 255))
    response = client.post("/predict/mnist", content=strip, headers={"content-type": "image/png"})
    assert response.status_code == 422
    assert "1x20000000" in response.json()["detail"]


def test_shapes_up_to_the_aspect_limit_decode_and_thinner_ones_do_not() -> None:
    bar = Image.new("L", (MAX_ASPECT_RATIO, 1), 255)
    bar.putpixel((MAX_ASPECT_RATIO // 2, 0), 0)
    assert mnist_pixels(png(bar), ImageLimits()).shape == (28, 28)
    with pytest.raises(DegenerateImage, match="over 100 times"):
        mnist_pixels(png(Image.new("L", (MAX_ASPECT_RATIO + 1, 1), 255)), ImageLimits())


def test_a_batch_over_the_request_pixel_budget_is_413(small_budget: TestClient) -> None:
    square = png(Image.new("L", (40, 40), 255))  # 1,600 pixels: one fits, two do not
    files = [("file", (f"{i}.png", square, "image/png")) for i in range(2)]
    response = small_budget.post("/predict/mnist", files=files)
    assert response.status_code == 413
    assert "2,000 pixels" in response.json()["detail"]


LONE_SURROGATE = b'"\\ud800"'  # a JSON escape Python decodes to a str UTF-8 cannot encode


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/jobs", b'{"model": %s}'),
        ("POST", "/jobs", b'{"model": "linear", "params": {%s: 1}}'),
        ("POST", "/sweeps", b'{"model": %s, "space": {"lr": [0.1]}}'),
        ("POST", "/sweeps/1/promote", b'{"alias": %s}'),
        ("PUT", "/models/linear/aliases/prod", b'{"job_id": %s}'),
        ("POST", "/predict/diabetes", b'{"model": %s}'),
        ("POST", "/predict/mnist", b'{"pixels": %s}'),
    ],
)
def test_a_lone_surrogate_in_json_is_a_422(
    client: TestClient, method: str, path: str, body: bytes
) -> None:
    response = client.request(
        method, path, content=body % LONE_SURROGATE, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


@pytest.mark.parametrize("ids", ["\u00b2", "9" * 4301, "1,\u00b2", "99999999999"])
def test_compare_ids_that_int_refuses_are_a_422(client: TestClient, ids: str) -> None:
    response = client.get("/jobs/compare", params={"ids": ids})
    assert response.status_code == 422
    assert "is not a job id" in response.json()["detail"]


@pytest.fixture
def job_id(client: TestClient) -> int:
    response = client.post("/jobs", json={"model": "linear"})
    assert response.status_code == 201
    return response.json()["id"]


@pytest.mark.parametrize("cursor", [b"\xb2", b"9" * 4301, b"1.5"])
def test_a_last_event_id_that_is_no_event_id_is_a_422(
    client: TestClient, job_id: int, cursor: bytes
) -> None:
    response = client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": cursor})
    assert response.status_code == 422
    assert "Last-Event-ID" in response.json()["detail"]


@pytest.mark.parametrize("spelling", ["{}.0", "+{}", "{}%C2%A0", "%EF%BC%91"])
def test_path_ids_are_plain_digits(client: TestClient, job_id: int, spelling: str) -> None:
    path = f"/jobs/{spelling.format(job_id)}"
    assert client.get(path).status_code == 422
    assert client.delete(path).status_code == 422
    assert client.get(f"/jobs/{job_id}").status_code == 200  # not deleted


def succeeded_job(client: TestClient, model: str) -> int:
    """Submit a job and finish it at once, as a worker would."""
    assert client.post("/jobs", json={"model": model}).status_code == 201
    job = jobs.claim_next_job(
        client.app.state.engine,  # type: ignore[attr-defined]
        worker=jobs.WorkerIdentity.current(1),
        devices=["auto", "cpu"],
        lease_s=30.0,
    )
    assert job is not None and job.id is not None
    assert jobs.finish_job(client.app.state.engine, jobs.Lease(job.id, job.attempts))  # type: ignore[attr-defined]
    return job.id


def test_init_from_must_name_a_succeeded_job_of_the_same_model(client: TestClient) -> None:
    source = succeeded_job(client, "linear")
    cancelled = client.post("/jobs", json={"model": "linear"}).json()["id"]
    assert client.post(f"/jobs/{cancelled}/cancel").status_code == 200

    def submit(model: str, init_from: int) -> tuple[int, str]:
        response = client.post("/jobs", json={"model": model, "params": {"init_from": init_from}})
        return response.status_code, response.text

    assert submit("linear", source)[0] == 201
    assert submit("linear", 10**30)[0] == 422
    assert submit("linear", 999_999) == (
        422,
        '{"detail":"init_from=999999: there is no job 999999"}',
    )
    status, text = submit("quadratic", source)
    assert status == 422 and "trained 'linear'" in text
    status, text = submit("linear", cancelled)
    assert status == 422 and "cancelled" in text
    sweep = {"model": "linear", "params": {"init_from": cancelled}, "space": {"lr": [0.1, 0.2]}}
    assert client.post("/sweeps", json=sweep).status_code == 422


def test_json_routes_keep_the_json_limit_whatever_the_content_type(settings: Settings) -> None:
    small = settings.model_copy(update={"max_body_bytes": 4096})
    body = b"x" * 5000  # within the upload limits, over the JSON limit
    with TestClient(create_app(small)) as client:
        for content_type in ("multipart/form-data; boundary=x", "image/png"):
            headers = {"content-type": content_type}
            response = client.post("/jobs", content=body, headers=headers)
            assert response.status_code == 413, content_type
            assert "4096 bytes" in response.json()["detail"]
        # The upload routes keep the upload limits.
        image = png(Image.new("L", (28, 28)))
        response = client.post("/predict/mnist", files={"file": ("d.png", image + body)})
        assert response.status_code != 413


def send_unread(app: Any, path: str, headers: dict[str, str], chunks: int) -> tuple[int, int]:
    """POST ``chunks`` body chunks straight to the ASGI app; its status and chunks it read."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("testclient", 1),
        "root_path": "",
    }
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b"x" * 1000, "more_body": read < chunks}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], read


def test_a_body_without_the_api_key_is_refused_unread(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"api_key": SecretStr("s3cret")}))
    length = {"content-length": "100000"}
    for path, content_type in [
        ("/jobs", "application/json"),
        ("/jobs", "multipart/form-data; boundary=x"),
        ("/predict/mnist", "multipart/form-data; boundary=x"),
    ]:
        headers = {**length, "content-type": content_type}
        assert send_unread(app, path, headers, 100) == (401, 0)
        wrong = {**headers, "authorization": "Bearer wrong"}
        assert send_unread(app, path, wrong, 100) == (401, 0)
    keyed = {**length, "content-type": "application/json", "authorization": "Bearer s3cret"}
    status, read = send_unread(app, "/jobs", keyed, 100)
    assert status == 422 and read == 100  # read, and found not to be JSON


def test_the_job_list_leaves_inline_data_out_unless_asked(client: TestClient) -> None:
    points = {"x": [1.0, 2.0, 3.0], "y": [2.0, 4.0, 6.0]}
    job = client.post("/jobs", json={"model": "linear", "params": {"data": points}}).json()
    assert client.get(f"/jobs/{job['id']}").json()["params"]["data"] == points
    listed = client.get("/jobs").json()["data"][0]
    assert "data" not in listed["params"] and listed["params"]["epochs"] == 1000
    assert client.get("/jobs", params={"include": "data"}).json()["data"][0]["params"]["data"]


@pytest.mark.parametrize(
    ("priority", "status"), [(-93.0, 201), (-93, 201), (1.5, 422), ("7", 422), (True, 422)]
)
def test_a_whole_number_is_an_integer_as_json_schema_counts_them(
    client: TestClient, priority: object, status: int
) -> None:
    """The schema says integer, and JSON Schema takes -93.0 as one; strings and booleans not."""
    response = client.post("/jobs", json={"model": "linear", "priority": priority})
    assert response.status_code == status, response.text
    if status == 201:
        assert response.json()["priority"] == -93
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["JobCreate_linear"]["properties"]["priority"]["type"] == "integer"


def test_sweep_counts_take_whole_floats_too(client: TestClient) -> None:
    body = {"model": "linear", "space": {"lr": [0.1]}, "seed": 3.0, "trials": 1.0}
    assert client.post("/sweeps", json=body).status_code == 201


def test_the_image_schema_states_the_exactly_one_rule(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/predict/mnist"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/MnistInputs"}
    rule = schema["components"]["schemas"]["MnistInputs"]["oneOf"]
    assert [branch["required"] for branch in rule] == [["image"], ["images"]]


def test_job_id_with_alias_is_a_precondition_in_the_schema_and_the_route(
    client: TestClient,
) -> None:
    """Both may be given: the alias must name that job (409 otherwise; see test_end_to_end)."""
    operation = client.get("/openapi.json").json()["paths"]["/predict/linear"]["post"]
    words = {p["name"]: p["description"] for p in operation["parameters"]}
    assert "409 unless" in words["job_id"] and "409 unless" in words["alias"]
    both = client.post("/predict/linear", params={"job_id": 1, "alias": "a"}, json={"x": [1.0]})
    assert both.status_code == 404 and "no alias 'a'" in both.json()["detail"]
