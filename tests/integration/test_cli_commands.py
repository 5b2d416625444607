"""The operating commands against a real server: global options, show/label, cancel, delete,
logs, promote, export, sweeps, the predict table and how refusals read."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from tests.utils.live_server import LiveServer, free_port, wait_for_job
from torchkiln.service.cli.main import app


@pytest.fixture
def cli(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TORCHKILN_URL", server.url)
    monkeypatch.delenv("TORCHKILN_API_KEY", raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # Rich tables wrap at the terminal's width
    return CliRunner()


def ok(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.output


def submitted(cli: CliRunner, *args: str) -> int:
    return int(ok(cli, "submit", *args).split()[0])


def test_url_before_or_after_the_sub_command(
    cli: CliRunner, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("TORCHKILN_URL", nowhere)
    assert cli.invoke(app, ["models"]).exit_code == 3  # the environment names no server
    assert "mnist_cnn" in ok(cli, "--url", server.url, "models")
    assert "mnist_cnn" in ok(cli, "models", "--url", server.url)
    # The sub-command's own option is the nearer one, and wins.
    assert "mnist_cnn" in ok(cli, "--url", nowhere, "models", "--url", server.url)
    assert "mnist_cnn" in ok(cli, "--url", server.url, "--api-key", "unused", "models")


def test_refusals_print_one_field_message_per_line(cli: CliRunner) -> None:
    result = cli.invoke(app, ["submit", "linear", "-p", "epochs=-1", "-p", "lr=fast"])
    assert result.exit_code == 3
    lines = result.output.splitlines()
    assert "422: invalid request" in lines
    assert any(line.startswith("params.epochs: ") for line in lines), result.output
    assert any(line.startswith("params.lr: ") for line in lines), result.output
    assert "{'" not in result.output  # not a Python repr
    missing = cli.invoke(app, ["show", "999999"])
    assert missing.exit_code == 3 and missing.output.startswith("404: "), missing.output


def wait_for_live_workers(http: httpx.Client, timeout_s: float = 90.0) -> None:
    """Until a worker has registered: before that every queued job waits for "no live worker"."""
    deadline = time.monotonic() + timeout_s
    while http.get("/workers").json()["live"] == 0:
        assert time.monotonic() < deadline, "no worker registered"
        time.sleep(0.2)


def test_show_label_cancel_delete_a_job_that_cannot_run(
    cli: CliRunner, http: httpx.Client, tmp_path: Path
) -> None:
    wait_for_live_workers(http)
    job_id = submitted(cli, "linear", "--name", "on a gpu", "--tag", "gpu", "--note", "no gpu")
    # A device no worker here has (cuda:63 exists nowhere): the job says why it waits.
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"model": "linear", "device": "cuda:63"}))
    stuck = submitted(cli, "--spec", str(spec))
    shown = ok(cli, "show", str(stuck))
    assert "waiting" in shown and "no live worker can run device 'cuda:63'" in shown, shown
    table = ok(cli, "jobs", "--model", "linear")
    assert "no live worker can run device 'cuda:63'" in table, table
    labelled = ok(cli, "label", str(job_id), "--tag", "a", "--tag", "b", "--note", "second")
    assert "on a gpu [a, b]" in labelled
    shown = ok(cli, "show", str(job_id))
    assert "on a gpu" in shown and "a, b" in shown and "second" in shown and "params" in shown
    assert f"{job_id}" in ok(cli, "jobs", "--tag", "a") and "1 of 1" in ok(cli, "jobs", "-q", "GPU")
    assert ok(cli, "cancel", str(stuck)).strip() == f"job {stuck} cancelled"
    assert cli.invoke(app, ["cancel", str(stuck)]).exit_code == 3  # already over: 409
    assert ok(cli, "delete", str(stuck)).strip() == f"job {stuck} deleted"
    assert cli.invoke(app, ["show", str(stuck)]).exit_code == 3
    assert json.loads(ok(cli, "show", str(job_id), "--json"))["tags"] == ["a", "b"]


def test_logs_follow_promote_export_and_the_predict_table(
    cli: CliRunner, http: httpx.Client, tmp_path: Path
) -> None:
    job_id = submitted(cli, "linear", "-p", "epochs=300", "-p", "lr=0.05")
    followed = ok(cli, "logs", str(job_id), "--follow", "--interval", "0.1")
    assert "succeeded" in followed.splitlines()[-1], followed
    assert wait_for_job(http, job_id)["status"] == "succeeded"
    assert ok(cli, "logs", str(job_id)) == followed  # the same lines, read once more
    assert ok(cli, "promote", str(job_id), "champion").strip() == f"linear champion -> job {job_id}"
    aliases = http.get("/models/linear/aliases").json()["data"]
    assert ("champion", job_id) in {(a["alias"], a["job_id"]) for a in aliases}
    table = ok(cli, "predict", "linear", "--alias", "champion", "--x", "1", "2")
    assert f"job {job_id} (linear)" in table
    header = next(line for line in table.splitlines() if " x " in line)
    assert " y " in header, table
    raw = json.loads(ok(cli, "predict", "linear", "--x", "1", "--raw", "--job-id", str(job_id)))
    assert raw["job_id"] == job_id and len(raw["y"]) == 1
    exported = ok(cli, "export", str(job_id), "-o", str(tmp_path))
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1 and str(files[0]) in exported
    target = tmp_path / "weights.safetensors"
    ok(cli, "export", str(job_id), "--output", str(target))
    # Each download is encoded anew (its metadata's order may differ): compare the contents.
    first, second = load_file(files[0]), load_file(target)
    assert first.keys() == second.keys() and all(first[k].equal(second[k]) for k in first)
    assert cli.invoke(app, ["delete", str(job_id)]).exit_code == 3  # an alias names it: 409


def test_sweep_create_list_show(cli: CliRunner, http: httpx.Client, tmp_path: Path) -> None:
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        "model: linear\nparams:\n  epochs: 6\nspace:\n  lr: [0.01, 0.05]\n"
        "metric: train_loss\nhalving:\n  rungs: [2]\n  eta: 2\n"
    )
    created = ok(cli, "sweep", "create", str(spec))
    assert "2 trials of linear" in created
    sweep_id = int(created.split()[1].rstrip(":"))
    for trial in http.get(f"/sweeps/{sweep_id}").json()["leaderboard"]:
        wait_for_job(http, trial["job_id"])
    board = ok(cli, "sweep", "show", str(sweep_id))
    assert f"sweep {sweep_id} finished" in board and '"lr": 0.05' in board, board
    statuses = {t["status"] for t in http.get(f"/sweeps/{sweep_id}").json()["leaderboard"]}
    assert all(status in board for status in statuses)
    assert f"{sweep_id}" in ok(cli, "sweep", "list") and "2/2" in ok(cli, "sweep", "list")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: linear\nspace: {}\n")
    refused = cli.invoke(app, ["sweep", "create", str(bad)])
    assert refused.exit_code == 3 and "space: " in refused.output, refused.output


def test_datasets_upload_list_show_delete(cli: CliRunner, tmp_path: Path) -> None:
    table = tmp_path / "people.csv"
    table.write_text("age,city\n31,Oslo\n45,Rome\n")
    uploaded = ok(cli, "datasets", "upload", str(table), "--name", "people")
    assert "people (2 rows x 2 columns)" in uploaded and "categorical" in uploaded, uploaded
    dataset_id = uploaded.split()[1].rstrip(":")
    assert "people" in ok(cli, "datasets", "list")
    shown = ok(cli, "datasets", "show", dataset_id)
    assert '{"age": 31, "city": "Oslo"}' in shown, shown
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2,3\n")
    refused = cli.invoke(app, ["datasets", "upload", str(ragged)])
    assert refused.exit_code == 3 and "line 2 has 3 fields" in refused.output, refused.output
    assert f"dataset {dataset_id} deleted" in ok(cli, "datasets", "delete", dataset_id)
    assert cli.invoke(app, ["datasets", "show", dataset_id]).exit_code == 3
