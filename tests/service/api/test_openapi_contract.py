"""What /openapi.json states beyond FastAPI's defaults: typed answers, examples, enums, the
key only where one is set, and the content of the routes that do not answer JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.conftest import make_settings
from torchkiln.models import REGISTRY
from torchkiln.service.api.app import create_app
from torchkiln.service.api.routes import compare, predict
from torchkiln.service.api.routes.jobs import validate_params

COMPONENTS = "#/components/schemas/"


@pytest.fixture
def schema(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()


def resolve(schema: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    return schema["components"]["schemas"][ref["$ref"].removeprefix(COMPONENTS)]


def answer_schema(schema: dict[str, Any], path: str) -> dict[str, Any]:
    return schema["paths"][path]["post"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]


def test_without_a_key_no_operation_asks_for_one(schema: dict[str, Any]) -> None:
    operations = [op for item in schema["paths"].values() for op in item.values()]
    assert not [op["operationId"] for op in operations if "security" in op]
    assert not [op["operationId"] for op in operations if "401" in op["responses"]]
    assert "securitySchemes" not in schema["components"]


def test_with_a_key_every_protected_operation_asks_for_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'kiln.db'}")
    app = create_app(settings.model_copy(update={"api_key": SecretStr("k")}))
    schema = app.openapi()
    paths = schema["paths"]
    assert paths["/jobs"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "401" in paths["/predict/linear"]["post"]["responses"]
    assert "security" not in paths["/healthz"]["get"]  # the probes stay open
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_every_schema_has_its_own_short_name(schema: dict[str, Any]) -> None:
    """Two pydantic models of one name get module-qualified names, which generated clients drop."""
    names = schema["components"]["schemas"]
    assert not [name for name in names if "__" in name]


def test_each_prediction_route_declares_its_models_answer(schema: dict[str, Any]) -> None:
    linear = resolve(schema, answer_schema(schema, "/predict/linear"))
    assert linear["required"] == ["job_id", "alias", "model", "y"]
    assert linear["properties"]["model"]["const"] == "linear"
    mnist = resolve(schema, answer_schema(schema, "/predict/mnist"))
    assert mnist["properties"]["model"]["enum"] == ["mnist_mlp", "mnist_cnn"]
    assert mnist["properties"]["predictions"]["items"] == {"$ref": COMPONENTS + "DigitPrediction"}
    # sequential answers as its data set's built-in model (or the uploaded-data one) does.
    shapes = [
        resolve(schema, s)["title"] for s in answer_schema(schema, "/predict/sequential")["anyOf"]
    ]
    assert shapes == [
        "SequentialMnistPrediction",
        "SequentialCifar10Prediction",
        "SequentialDiabetesPrediction",
        "SequentialImageClassPrediction",
        "SequentialTabularClassPrediction",
        "SequentialTabularValuePrediction",
    ]
    compared = schema["paths"]["/jobs/compare"]["get"]["responses"]["200"]["content"]
    assert compared["application/json"]["schema"] == {"$ref": COMPONENTS + "ComparisonPublic"}


def test_answers_are_documented_not_validated() -> None:
    """Handlers return orjson bytes; without a response model FastAPI never re-checks them."""
    routes = [r for r in [*predict.router.routes, *compare.router.routes] if r.include_in_schema]
    assert len(routes) == len(REGISTRY) + 3  # the shared mnist and cifar10 routes, compare
    for route in routes:
        assert isinstance(route, APIRoute)
        assert route.response_model is None and route.response_field is None, route.path
        assert 200 in route.response_fields, route.path


def test_every_model_has_a_job_example_that_submits(
    client: TestClient, schema: dict[str, Any]
) -> None:
    body = schema["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert sorted(body["examples"]) == sorted(REGISTRY)
    for name, example in body["examples"].items():
        assert example["value"]["model"] == name
        validate_params(name, example["value"]["params"])
    submitted = client.post("/jobs", json=body["examples"]["linear"]["value"])
    assert submitted.status_code == 201, submitted.text


def test_every_prediction_body_has_examples_of_its_inputs(schema: dict[str, Any]) -> None:
    examples = schema["components"]["examples"]
    for path in [p for p in schema["paths"] if p.startswith("/predict/")]:
        body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        inputs = predict_inputs(path)
        assert body["schema"] == {"$ref": COMPONENTS + inputs.__name__}, path
        assert body["examples"], path
        for reference in body["examples"].values():
            value = examples[reference["$ref"].rsplit("/", 1)[1]]["value"]
            inputs.model_validate(value)


def predict_inputs(path: str) -> Any:
    name = path.removeprefix("/predict/")
    spec = REGISTRY.get(name) or next(s for s in REGISTRY.values() if name in s.tags)
    return spec.inputs


def test_states_modes_and_tasks_are_enums(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]

    def enum_of(model: str, field: str) -> list[str]:
        prop = components[model]["properties"][field]
        prop = next((p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"), prop)
        return prop["enum"] if "enum" in prop else resolve(schema, prop)["enum"]

    assert enum_of("JobPublic", "status") == [
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
    ]
    assert enum_of("JobPublic", "stop_kind") == ["early_stopping", "pruned"]
    assert enum_of("TrialPublic", "status")[-1] == "pruned"
    assert enum_of("TrialPublic", "stop_kind") == ["early_stopping", "pruned"]
    assert enum_of("SweepPublic", "status") == ["running", "cancelling", "finished", "cancelled"]
    assert enum_of("SweepPublic", "mode") == ["min", "max"]
    assert enum_of("ModelPublic", "task") == ["regression", "binary", "multiclass"]
    assert enum_of("ComparedJobPublic", "status")[0] == "queued"


def test_files_text_and_streams_declare_their_content(schema: dict[str, Any]) -> None:
    paths = schema["paths"]

    def content(path: str, status: str = "200", method: str = "get") -> dict[str, Any]:
        return paths[path][method]["responses"][status]["content"]

    binary = {"type": "string", "format": "binary"}
    assert content("/jobs/{job_id}/checkpoint")["application/octet-stream"]["schema"] == binary
    assert content("/jobs/{job_id}/export")["application/onnx"]["schema"] == binary
    assert content("/metrics")["text/plain"]["schema"] == {"type": "string"}
    stream = content("/jobs/{job_id}/events")["text/event-stream"]
    events = [item["properties"]["event"]["enum"] for item in stream["itemSchema"]["oneOf"]]
    assert events == [["epoch"], ["status", "end"]]
    data = stream["itemSchema"]["oneOf"][0]["properties"]["data"]["contentSchema"]
    assert resolve(schema, data)["title"] == "EpochEventData"
    error = {"$ref": COMPONENTS + "ErrorPublic"}
    assert (
        content("/sweeps/{sweep_id}/cancel", "409", "post")["application/json"]["schema"] == error
    )
    assert content("/jobs/{job_id}/export", "501")["application/json"]["schema"] == error


def test_a_422_is_documented_as_it_is_sent(client: TestClient, schema: dict[str, Any]) -> None:
    documented = content_schema(schema, "/jobs", "post", "422")
    assert documented == {"$ref": COMPONENTS + "ValidationErrorPublic"}
    fields = client.post("/jobs", json={"model": "linear", "params": {"epochs": 0}}).json()
    assert [set(e) for e in fields["detail"]] == [{"type", "loc", "msg", "input"}]
    detail = resolve(schema, documented)["properties"]["detail"]["anyOf"]
    assert detail[0]["items"] == {"$ref": COMPONENTS + "FieldErrorPublic"}
    assert detail[1] == {"type": "string"}  # a rule about several fields, in words
    assert isinstance(client.get("/jobs/compare", params={"ids": "x"}).json()["detail"], str)


def content_schema(schema: dict[str, Any], path: str, method: str, status: str) -> dict[str, Any]:
    return schema["paths"][path][method]["responses"][status]["content"]["application/json"][
        "schema"
    ]


def test_protocol_routes_declare_answers_and_the_binary_header(schema: dict[str, Any]) -> None:
    infer = schema["paths"]["/v2/models/{name}/infer"]["post"]
    assert content_schema(schema, "/v2/models/{name}/infer", "post", "200") == {
        "$ref": COMPONENTS + "InferResponsePublic"
    }
    assert "application/octet-stream" in infer["responses"]["200"]["content"]
    header = next(p for p in infer["parameters"] if p["in"] == "header")
    assert header["name"] == "Inference-Header-Content-Length" and not header["required"]
    ready = content_schema(schema, "/v2/models/{name}/ready", "get", "200")
    assert ready == {"$ref": COMPONENTS + "ModelReadyPublic"}
