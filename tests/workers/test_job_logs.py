"""Per-job log files with job ids, progress lines and TensorBoard event files."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from torchkiln.service.store.checkpoint_files import job_log_path
from torchkiln.service.store.log_records import JobIdFilter, JsonFormatter, current_job_id
from torchkiln.workers import job_logs, tensorboard
from torchkiln.workers.job_logs import attach, epoch_sinks

logger = logging.getLogger("tests.job_logs")


def test_job_log_keeps_that_jobs_records_as_json_lines(tmp_path: Path) -> None:
    logging.getLogger().setLevel(logging.INFO)
    logger.info("before any job")
    job_log = attach(tmp_path, 7)
    try:
        logger.info("training %s", "linear")
        # Another thread runs without the job's context (the heartbeat): not this job's.
        thread = threading.Thread(target=logger.info, args=("from a thread",))
        thread.start()
        thread.join()
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("job failed")
    finally:
        job_log.close()
    logger.info("after the job")
    assert current_job_id.get() is None
    lines = [json.loads(line) for line in job_log_path(tmp_path, 7).read_text().splitlines()]
    assert [line["message"] for line in lines] == ["training linear", "job failed"]
    assert {line["job_id"] for line in lines} == {7}
    assert lines[0]["level"] == "INFO" and lines[0]["logger"] == "tests.job_logs"
    assert "ValueError: boom" in lines[1]["exception"]


def test_formatter_and_filter_outside_a_job() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    assert JobIdFilter().filter(record) and record.job_id is None  # type: ignore[attr-defined]
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "hello you" and entry["job_id"] is None


def test_progress_lines_are_throttled_and_the_last_one_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tensorboard, "has_tensorboard", lambda: False)
    caplog.set_level(logging.INFO, logger=job_logs.__name__)
    sinks = epoch_sinks(tmp_path, 3, done_epochs=0)
    for epoch in range(1, 1001):
        sinks.add(epoch, {"train_loss": 1 / epoch})
    sinks.close()
    messages = [r.getMessage() for r in caplog.records if r.name == job_logs.__name__]
    assert messages == ["epoch 1000: train_loss=0.001"]
    assert not tensorboard.board_dir(tmp_path, 3).exists()


@pytest.mark.skipif(not tensorboard.has_tensorboard(), reason="tensorboard not installed")
def test_tensorboard_event_files_per_job(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sinks = epoch_sinks(tmp_path, 5, done_epochs=0)
    for epoch in range(1, 4):
        sinks.add(epoch, {"train_loss": 1.0 / epoch, "epoch_seconds": 0.01})
    sinks.close()
    directory = tensorboard.board_dir(tmp_path, 5)
    assert directory == tmp_path / "jobs" / "5" / "tensorboard"
    events = EventAccumulator(str(directory))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"train_loss", "epoch_seconds"}
    assert [e.step for e in events.Scalars("train_loss")] == [1, 2, 3]
