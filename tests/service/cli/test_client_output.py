"""The client commands' pure parts: which server, how refusals and answers read."""

from __future__ import annotations

import pytest
from rich.console import Console

from torchkiln.service.cli.http import DEFAULT_URL, Remote, error_lines, remote_of
from torchkiln.service.cli.job_actions import attachment_name
from torchkiln.service.cli.predict_command import answer_table
from torchkiln.service.cli.waits import queue_text


def test_a_422_reads_as_one_field_message_a_line() -> None:
    detail = [
        {"loc": ["body", "params", "lr"], "msg": "Input should be greater than 0"},
        {"loc": ["query", "sort"], "msg": "Input should be 'id'"},
        {"loc": [], "msg": "no field"},
    ]
    assert error_lines(422, detail) == [
        "422: invalid request",
        "params.lr: Input should be greater than 0",
        "sort: Input should be 'id'",
        "request: no field",
    ]
    assert error_lines(409, "job 3 has finished") == ["409: job 3 has finished"]


def test_the_nearer_option_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHKILN_URL", raising=False)
    monkeypatch.delenv("TORCHKILN_API_KEY", raising=False)
    assert remote_of(None, None, None) == Remote(DEFAULT_URL, None)
    monkeypatch.setenv("TORCHKILN_URL", "http://env:1")
    assert remote_of(None, None, "k") == Remote("http://env:1", "k")
    assert remote_of(None, "http://own:2", None).url == "http://own:2"


def test_a_download_name_is_never_a_path() -> None:
    assert attachment_name('attachment; filename="linear-job7.safetensors"', 7) == (
        "linear-job7.safetensors"
    )
    assert attachment_name('attachment; filename="../../etc/passwd"', 7) == "passwd"
    assert attachment_name("", 7) == "job7.safetensors"


def test_answers_become_one_row_per_input() -> None:
    table = answer_table(
        {
            "job_id": 1,
            "model": "logistic_hours",
            "probabilities": [0.1234567, 0.9],
            "passes": [False, True],
        },
        {"hours": [1.0, 4.0]},
    )
    console = Console(width=120, record=True)
    console.print(table)
    text = console.export_text()
    assert [c.header for c in table.columns] == ["hours", "probabilities", "passes"]
    assert "0.1235" in text and "True" in text
    digits = answer_table(
        {
            "predictions": [
                {"digit": 7, "probability": 0.99, "top3": [{"digit": 7, "probability": 0.99}]}
            ]
        },
        {"file": ["seven.png"]},
    )
    assert [c.header for c in digits.columns] == ["file", "digit", "probability", "top3"]


@pytest.mark.parametrize("width", [40, 80, 200])
def test_the_progress_line_fits_the_terminal(width: int) -> None:
    from io import StringIO

    from torchkiln.service.cli.job_events import job_progress

    out = StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system=None)
    progress = job_progress(console)
    losses = "train_loss 0.1234  val_loss 0.2345  val_accuracy 0.9876  " * 2
    progress.add_task("", total=1000, completed=512, job_id=12345, status="running", loss=losses)
    console.print(progress.get_renderable())
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and 0 < len(lines[0]) <= width, lines
    assert "job 12345 running" in lines[0] and "512/1000" in lines[0]


def test_a_queued_job_reads_its_place_and_estimated_wait() -> None:
    queued = {"status": "queued", "queue_position": 3, "queue_estimate_s": None}
    assert queue_text(queued) == "#3"
    waits = [(12.4, "12 s"), (250, "4 min"), (7500, "2 h 5 min")]
    for seconds, text in waits:
        estimated = {**queued, "queue_estimate_s": seconds}
        assert queue_text(estimated) == f"#3, starts in about {text}"
    assert queue_text({"status": "running", "queue_position": None}) is None
