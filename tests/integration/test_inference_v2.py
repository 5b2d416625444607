"""The Open Inference Protocol over real HTTP, driven by Triton's own client (tritonclient)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.models.fixtures import synthetic_digits
from tests.utils.http_jobs import predict
from tests.utils.live_server import LiveServer
from tests.utils.trained_server import start_trained


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server, _ = start_trained(tmp_path_factory.mktemp("v2"))
    yield server
    server.stop()


@pytest.fixture
def client(live: LiveServer) -> Iterator[triton.InferenceServerClient]:
    connection = triton.InferenceServerClient(url=live.url.removeprefix("http://"))
    yield connection
    connection.close()


def infer(
    client: triton.InferenceServerClient,
    model: str,
    name: str,
    array: np.ndarray,
    datatype: str,
    *,
    binary: bool,
    version: str = "",
) -> triton.InferResult:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    outputs = None
    if not binary:  # ask for JSON outputs too; binary requests take the client's default
        names = [o["name"] for o in client.get_model_metadata(model)["outputs"]]
        outputs = [triton.InferRequestedOutput(n, binary_data=False) for n in names]
    return client.infer(model, [tensor], model_version=version, outputs=outputs)


def test_server_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["name"] == "torchkiln"
    metadata = client.get_model_metadata("mnist_mlp")
    assert metadata["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, 28, 28]}]
    assert {o["name"]: o["shape"] for o in metadata["outputs"]} == {
        "probabilities": [-1, 10],
        "label": [-1],
    }
    assert len(metadata["versions"]) == 1
    assert client.is_model_ready("linear") and client.is_model_ready("mnist_mlp")
    assert not client.is_model_ready("mnist_cnn")  # nothing trained


@pytest.mark.parametrize("binary", [True, False])
def test_linear_and_logistic_hours_answer_like_predict(
    client: triton.InferenceServerClient, live: LiveServer, binary: bool
) -> None:
    x = np.array([[1.0], [4.0]], dtype=np.float32)
    result = infer(client, "linear", "x", x, "FP32", binary=binary)
    with live.client() as http:
        served = predict(http, "linear", {"x": [1.0, 4.0]})
        hours = predict(http, "logistic_hours", {"hours": [1.0, 4.0]})
    y = result.as_numpy("y")
    assert y.shape == (2, 1) and y.dtype == np.float32
    np.testing.assert_allclose(y[:, 0], served["y"], atol=1e-6)
    assert result.get_response()["model_version"] == str(served["job_id"])
    assert result.get_response()["parameters"]["alias"] == "production"

    answer = infer(client, "logistic_hours", "hours", x, "FP32", binary=binary)
    np.testing.assert_allclose(answer.as_numpy("probability")[:, 0], hours["probabilities"])
    assert answer.as_numpy("label").tolist() == [int(p) for p in hours["passes"]]
    assert answer.as_numpy("label").dtype == np.int64


@pytest.mark.parametrize("binary", [True, False])
def test_mnist_mlp_takes_uint8_images(
    client: triton.InferenceServerClient, live: LiveServer, binary: bool
) -> None:
    images, _ = synthetic_digits(3, seed=9)
    job_id = client.get_model_metadata("mnist_mlp")["versions"][0]
    result = infer(client, "mnist_mlp", "image", images, "UINT8", binary=binary, version=job_id)
    with live.client() as http:
        served = predict(http, "mnist_mlp", {"images": images.tolist()})
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert result.as_numpy("label").tolist() == [p["digit"] for p in served["predictions"]]
    best = probabilities.max(axis=1)
    np.testing.assert_allclose(best, [p["probability"] for p in served["predictions"]], atol=1e-6)


def test_errors_are_in_the_protocols_shape(
    client: triton.InferenceServerClient, live: LiveServer
) -> None:
    wrong_shape = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(InferenceServerException, match="shape"):
        infer(client, "linear", "x", wrong_shape, "FP32", binary=True)
    with pytest.raises(InferenceServerException, match="expected inputs"):
        infer(client, "linear", "hours", np.zeros((1, 1), np.float32), "FP32", binary=False)
    with httpx.Client(base_url=live.url) as http:
        unknown = http.post("/v2/models/nope/infer", json={"inputs": []})
        assert unknown.status_code == 400 and "error" in unknown.json()
        missing = http.post(
            "/v2/models/linear/versions/99999/infer",
            json={"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1]}]},
        )
        assert missing.status_code == 404 and set(missing.json()) == {"error"}
        nan = http.post(
            "/v2/models/linear/infer",
            content=b'{"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32",'
            b' "data": [NaN]}]}',
        )
        assert nan.status_code == 400 and set(nan.json()) == {"error"}


def test_an_alias_in_the_request_parameters_picks_the_version(
    client: triton.InferenceServerClient, live: LiveServer
) -> None:
    job_id = int(client.get_model_metadata("linear")["versions"][0])
    with live.client() as http:
        http.put("/models/linear/aliases/champion", json={"job_id": job_id}).raise_for_status()
    tensor = triton.InferInput("x", [1, 1], "FP32")
    tensor.set_data_from_numpy(np.array([[2.0]], dtype=np.float32))
    result = client.infer("linear", [tensor], parameters={"alias": "champion"})
    assert result.get_response()["parameters"] == {"job_id": job_id, "alias": "champion"}
    with pytest.raises(InferenceServerException, match="no alias 'nope'"):
        client.infer("linear", [tensor], parameters={"alias": "nope"})
