"""The client commands against a real server: submit → watch → jobs → predict → models."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.utils.live_server import LiveServer, wait_for_job
from torchkiln.service.cli.main import app


@pytest.fixture
def cli(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TORCHKILN_URL", server.url)
    monkeypatch.delenv("TORCHKILN_API_KEY", raising=False)
    return CliRunner()


def test_submit_watch_jobs_predict_models(cli: CliRunner, http: httpx.Client) -> None:
    submitted = cli.invoke(
        app, ["submit", "linear", "--param", "epochs=60", "-p", "lr=0.05", "--watch"]
    )
    assert submitted.exit_code == 0, submitted.output
    job_id = int(submitted.output.split()[0])
    assert "succeeded" in submitted.output and "train_loss" in submitted.output
    again = cli.invoke(app, ["watch", str(job_id)])
    assert again.exit_code == 0 and f"job {job_id} succeeded" in again.output
    table = cli.invoke(app, ["jobs", "--model", "linear", "--status", "succeeded"])
    assert table.exit_code == 0 and "60/60" in table.output, table.output
    answer = cli.invoke(app, ["predict", "linear", "--x", "1", "2", "-3", "--raw"])
    assert answer.exit_code == 0, answer.output
    assert f'"job_id": {job_id}' in answer.output and '"y"' in answer.output
    bare = cli.invoke(app, ["predict", "linear", "4", "--job-id", str(job_id)])
    assert bare.exit_code == 0 and f"job {job_id} (linear)" in bare.output, bare.output
    listed = cli.invoke(app, ["models"])
    assert listed.exit_code == 0 and "mnist_cnn" in listed.output
    # The worker wrote this job's log lines and the scrape counted its epochs.
    lines = http.get(f"/jobs/{job_id}/logs").json()["lines"]
    assert lines and all(line["job_id"] == job_id for line in lines)
    assert any("succeeded" in line["message"] for line in lines)
    scrape = http.get("/metrics").text
    assert 'torchkiln_epoch_duration_seconds_count{model="linear"}' in scrape


def test_spec_file_and_a_failed_job(cli: CliRunner, tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    # A learning rate this large diverges: the worker fails the job within a few epochs.
    spec.write_text("model: linear\nparams:\n  epochs: 1000\n  lr: 10.0\n")
    result = cli.invoke(app, ["submit", "--spec", str(spec), "--watch"])
    assert result.exit_code == 1, result.output
    assert "failed" in result.output and "diverged" in result.output


def test_image_upload_and_request_errors(
    cli: CliRunner, http: httpx.Client, tmp_path: Path
) -> None:
    image = tmp_path / "seven.png"
    buffer = io.BytesIO()
    Image.new("L", (28, 28)).save(buffer, format="PNG")
    image.write_bytes(buffer.getvalue())
    # No mnist model trained here: the server's 409 comes back as exit code 3 with its detail.
    result = cli.invoke(app, ["predict", "mnist", str(image)])
    assert result.exit_code == 3 and "409" in result.output, result.output
    assert cli.invoke(app, ["watch", "999999"]).exit_code == 3
    bad = cli.invoke(app, ["submit", "linear", "-p", "epochs=-1"])
    assert bad.exit_code == 3 and "epochs" in bad.output
    queued = wait_for_job(http, int(cli.invoke(app, ["submit", "linear"]).output.split()[0]))
    assert queued["status"] == "succeeded"
