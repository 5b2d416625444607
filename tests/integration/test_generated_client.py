"""A client that openapi-python-client generates from ``/openapi.json`` drives the README's
walk-through against a real server, and every answer arrives as one of its typed models.

What an outside user would do: generate from the served schema, write no types by hand. The
only generator warnings allowed are for the raw ``image/*`` bodies it cannot send (uploads go
as multipart, which it can).
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.models.fixtures import synthetic_digits
from tests.utils.live_server import LiveServer
from tests.utils.trained_server import start_mnist_server

PACKAGE = "torchkiln_client"
# No formatting hooks: nothing but the generator needs to be installed.
CONFIG = f"package_name_override: {PACKAGE}\npost_hooks: []\n"
# Raw image and CSV bodies are alternatives the generator skips; each route keeps its JSON body.
ALLOWED_WARNING = re.compile(r"Unsupported content type (image/(png|jpeg)|text/csv)")


def generate(schema: bytes, folder: Path) -> str:
    """Write the client package into ``folder``; what the generator printed."""
    (folder / "openapi.json").write_bytes(schema)
    (folder / "config.yaml").write_text(CONFIG)
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--meta", "none"]
    command += ["--path", str(folder / "openapi.json"), "--config", str(folder / "config.yaml")]
    command += ["--output-path", str(folder / PACKAGE)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def png(digit: int) -> bytes:
    images, _ = synthetic_digits(1, seed=digit)
    buffer = io.BytesIO()
    Image.fromarray(images[0]).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_mnist_server(tmp_path_factory.mktemp("generated-client"))
    yield live
    live.stop()


@pytest.fixture(scope="module")
def generated(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The generated package, imported from a temporary folder."""
    folder = tmp_path_factory.mktemp("client")
    output = generate(httpx.get(f"{server.url}/openapi.json", timeout=60).content, folder)
    warnings = re.findall(r"WARNING parsing \S+ \S+ within \w+\.\s+(.+)", output)
    assert all(ALLOWED_WARNING.match(detail) for detail in warnings), output
    sys.path.insert(0, str(folder))
    try:
        yield Client(server.url)
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[name]


class Client:
    """The generated package, and the walk-through's steps through it."""

    def __init__(self, url: str) -> None:
        self.models = importlib.import_module(f"{PACKAGE}.models")
        self.types = importlib.import_module(f"{PACKAGE}.types")
        client = importlib.import_module(f"{PACKAGE}.client")
        # No API key on this server, so the schema asks for none: the plain Client works.
        self.client = client.Client(base_url=url, timeout=httpx.Timeout(60.0))

    def model(self, name: str) -> Any:
        return getattr(self.models, name)

    def call(
        self, tag: str, operation: str, expect: int, parsed: str | type, /, **kwargs: Any
    ) -> Any:
        """Call the operation; its answer, checked to be ``expect`` and parsed as ``parsed``."""
        module = importlib.import_module(f"{PACKAGE}.api.{tag}.{operation}")
        response = module.sync_detailed(client=self.client, **kwargs)
        expected = self.model(parsed) if isinstance(parsed, str) else parsed
        assert response.status_code == expect, (operation, response.content[:500])
        assert isinstance(response.parsed, expected), (operation, type(response.parsed))
        return response.parsed

    def submit(self, model: str, **fields: Any) -> Any:
        """POST /jobs with the model's own generated spec class (``JobCreateLinear``...)."""
        spec = self.model("JobCreate" + "".join(p.capitalize() for p in model.split("_")))
        job = self.call("jobs", "submit_job", 201, "JobPublic", body=spec(model=model, **fields))
        assert isinstance(job.status, self.model("JobState"))
        assert isinstance(job.created_at, datetime.datetime)
        return job

    def finished(self, job_id: int) -> Any:
        # The event stream ends with the job: the client reads it whole, as text.
        assert "event: end" in self.call("jobs", "stream_job_events", 200, str, job_id=job_id)
        job = self.call("jobs", "read_job", 200, "JobPublic", job_id=job_id)
        assert job.status == self.model("JobState").SUCCEEDED, job
        return job

    def train(self, model: str, options: str, **params: Any) -> Any:
        return self.finished(self.submit(model, params=self.model(options)(**params)).id)

    def predict_linear(self, **pick: Any) -> Any:
        body = self.model("XInputs")(x=[4.0])
        return self.call("predict", "predict_linear", 200, "LinearPrediction", body=body, **pick)


def test_the_walkthrough_through_a_generated_client(generated: Client) -> None:
    models = generated.call("models", "list_models", 200, "ModelsPublic")
    assert {"linear", "mnist_cnn"} <= {m.name for m in models.data}
    assert all(isinstance(m.task, generated.model("ModelPublicTask")) for m in models.data)
    train_and_predict_hours(generated)
    errors_are_typed(generated)
    linear, short = versions_and_aliases(generated)
    promoted = promote_by_rule(generated)
    cancel_and_list(generated, {linear, short, promoted})
    upload_images(generated)
    compare_count_and_download(generated, linear, short)
    open_inference_protocol(generated, promoted)


def train_and_predict_hours(g: Client) -> None:
    """A job, its state, event stream and history, then its prediction."""
    optimizer = g.model("LogisticHoursOptionsOptimizer").SGD
    job = g.train(
        "logistic_hours", "LogisticHoursOptions", epochs=1000, optimizer=optimizer, lr=0.05
    )
    metrics = g.call(
        "jobs", "read_metrics", 200, "MetricsPublic", job_id=job.id, name=["train_loss"]
    )
    assert all(isinstance(p, g.model("MetricPointPublic")) for p in metrics.points)
    body = g.model("HoursInputs")(hours=[1.0, 2.5, 4.0])
    hours = g.call("predict", "predict_logistic_hours", 200, "LogisticHoursPrediction", body=body)
    assert (hours.job_id, hours.alias, hours.model) == (job.id, "production", "logistic_hours")
    assert hours.probabilities == sorted(hours.probabilities)
    assert hours.passes == [False, True, True]


def errors_are_typed(g: Client) -> None:
    """A bad option names its field; predicting with nothing trained is a 409 in words."""
    bad = g.model("JobCreateLinear")(model="linear", params=g.model("LinearOptions")(epochs=0))
    refused = g.call("jobs", "submit_job", 422, "ValidationErrorPublic", body=bad)
    assert [e.loc for e in refused.detail] == [["body", "params", "epochs"]]
    body = g.model("XInputs")(x=[4.0])
    untrained = g.call("predict", "predict_linear", 409, "ErrorPublic", body=body)
    assert "no trained linear model yet" in untrained.detail


def versions_and_aliases(g: Client) -> tuple[int, int]:
    """The first linear job is production; a throw-away run is a version that does not take
    over until the alias is moved to it."""
    linear = g.train("linear", "LinearOptions").id
    short = g.train("linear", "LinearOptions", epochs=10).id
    answer = g.predict_linear()
    assert (answer.job_id, answer.alias, answer.model) == (linear, "production", "linear")
    assert answer.y[0] == pytest.approx(8.0, abs=0.1)
    pinned = g.predict_linear(job_id=short)
    assert (pinned.job_id, pinned.alias) == (short, None)
    versions = g.call("versions", "list_versions", 200, "VersionsPublic", model="linear")
    assert [(v.job_id, v.aliases) for v in versions.data] == [(short, []), (linear, ["production"])]
    body = g.model("AliasSet")(job_id=short)
    kwargs = {"model": "linear", "alias": "production", "body": body}
    assert g.call("versions", "set_alias", 200, "AliasPublic", **kwargs).job_id == short
    assert g.predict_linear().job_id == short
    return linear, short


def promote_by_rule(g: Client) -> int:
    rule = g.model("PromoteRule")(alias="production", if_better="train_loss")
    job = g.submit("linear", params=g.model("LinearOptions")(epochs=2000), promote=rule)
    assert g.finished(job.id).promote.additional_properties["alias"] == "production"
    assert g.predict_linear().job_id == job.id  # it beat the 10-epoch run's train_loss
    return job.id


def cancel_and_list(g: Client, succeeded_linear: set[int]) -> None:
    JobState = g.model("JobState")  # noqa: N806
    job = g.submit("quadratic", params=g.model("QuadraticOptions")(epochs=100_000))
    cancelled = g.call("jobs", "cancel_job", 200, "JobPublic", job_id=job.id)
    assert cancelled.status == JobState.CANCELLED or cancelled.is_cancel_requested
    kwargs = {"status": JobState.SUCCEEDED, "model": "linear", "limit": 20, "offset": 0}
    listed = g.call("jobs", "list_jobs", 200, "JobsPublic", **kwargs)
    assert {j.id for j in listed.data} == succeeded_linear


def upload_images(g: Client) -> None:
    """Image files as multipart to the shared mnist route, from a one-epoch mnist_mlp."""
    g.train("mnist_mlp", "MnistOptions", epochs=1, batch_size=32)
    File = g.types.File  # noqa: N806
    files = [File(io.BytesIO(png(d)), file_name=f"{d}.png", mime_type="image/png") for d in (1, 2)]
    body = g.model("PredictMnistFilesBody")(file=files)
    digits = g.call("predict", "predict_mnist", 200, "MnistPrediction", body=body)
    assert digits.model == g.model("MnistPredictionModel").MNIST_MLP
    assert len(digits.predictions) == 2
    for guess in digits.predictions:
        assert isinstance(guess, g.model("DigitPrediction")) and 0 <= guess.digit <= 9
        assert [type(t) for t in guess.top3] == [g.model("DigitGuess")] * 3


def compare_count_and_download(g: Client, linear: int, short: int) -> None:
    """Runs side by side, the Prometheus text, and a checkpoint's safetensors bytes."""
    kwargs = {"ids": [linear, short], "names": ["train_loss"]}
    compared = g.call("jobs", "compare_jobs", 200, "ComparisonPublic", **kwargs)
    assert compared.names == ["train_loss"]
    assert [(c.job_id, c.status.value) for c in compared.data] == [
        (linear, "succeeded"),
        (short, "succeeded"),
    ]
    assert [epoch for epoch, _ in compared.data[1].series["train_loss"]] == list(range(1, 11))
    assert "torchkiln_jobs" in g.call("observability", "read_prometheus_metrics", 200, str)
    weights = g.call("versions", "download_checkpoint", 200, g.types.File, job_id=linear)
    data = weights.payload.read()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    assert header["__metadata__"]["model"] == "linear"


def open_inference_protocol(g: Client, production: int) -> None:
    """Not in the walk-through, but a prediction route too: metadata, then inference."""
    name = g.model("V2ModelMetadataName").LINEAR
    kwargs = {"name": name}
    metadata = g.call("inference_v2", "v2_model_metadata", 200, "ModelMetadataPublic", **kwargs)
    assert str(production) in metadata.versions
    assert [(t.name, t.shape) for t in metadata.inputs] == [("x", [-1, 1])]
    tensor = g.model("RequestInput")(name="x", shape=[1, 1], datatype="FP32", data=[4.0])
    kwargs = {
        "name": g.model("V2InferName").LINEAR,
        "body": g.model("InferRequest")(inputs=[tensor]),
    }
    answer = g.call("inference_v2", "v2_infer", 200, "InferResponsePublic", **kwargs)
    assert (answer.model_version, answer.parameters.alias) == (str(production), "production")
    assert answer.outputs[0].name == "y" and answer.outputs[0].data[0] == pytest.approx(8, abs=0.1)


def test_every_operation_answers_a_type(generated: Client) -> None:
    """Nothing parses to ``Any`` but the two 204s (no body): the schema types every answer."""
    api = Path(importlib.import_module(f"{PACKAGE}.api").__path__[0])
    operations = sorted(p for p in api.glob("*/*.py") if p.name != "__init__.py")
    untyped = []
    for module in operations:
        source = module.read_text()
        returns = re.search(r"def _parse_response\(.*?\) -> (.+?):\n", source)
        assert returns is not None, module
        if "Any" in returns.group(1) and "status_code == 204" not in source:
            untyped.append(module.stem)
    assert len(operations) > 50 and not untyped, untyped
