"""GET /jobs/{id}/events over real HTTP: Server-Sent Events read with httpx streaming."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from tests.utils.http_jobs import submit
from tests.utils.live_server import wait_for_job

STREAM_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


@dataclass
class Event:
    name: str
    data: dict[str, Any]
    id: str | None


def read_events(response: httpx.Response) -> Iterator[Event]:
    """Parse an SSE body: blank-line separated blocks of ``field: value`` lines."""
    name, data, event_id = "message", [], None
    for line in response.iter_lines():
        if line == "":
            if data:
                yield Event(name, json.loads("\n".join(data)), event_id)
            name, data, event_id = "message", [], None
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value


def stream(http: httpx.Client, job_id: int, last_event_id: str | None = None) -> list[Event]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    with http.stream(
        "GET", f"/jobs/{job_id}/events", headers=headers, timeout=STREAM_TIMEOUT
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(read_events(response))


def epochs_of(events: list[Event]) -> list[int]:
    return [e.data["epoch"] for e in events if e.name == "epoch"]


def test_one_event_per_epoch_in_order_then_the_end(http: httpx.Client) -> None:
    job_id = submit(http, "logistic_hours", epochs=400)
    events = stream(http, job_id)  # connected while queued or running: it follows along

    assert epochs_of(events) == list(range(1, 401))
    assert events[-1].name == "end"
    assert events[-1].data == {"status": "succeeded", "epoch": 400, "epochs": 400, "error": None}
    statuses = [e.data["status"] for e in events if e.name == "status"]
    assert statuses[-1] == "succeeded" and len(statuses) == len(set(statuses))
    ids = [int(e.id) for e in events if e.name == "epoch"]  # type: ignore[arg-type]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    history = http.get(f"/jobs/{job_id}/metrics", params={"name": "train_loss"}).json()
    losses = [e.data["metrics"]["train_loss"] for e in events if e.name == "epoch"]
    assert losses == [p["value"] for p in history["points"]]
    first = next(e for e in events if e.name == "epoch")
    assert first.data["epochs"] == 400 and {"train_loss", "w", "b"} <= set(first.data["metrics"])


def test_last_event_id_resumes_after_that_epoch(http: httpx.Client) -> None:
    job_id = submit(http, "linear_noisy", epochs=3000)
    seen: list[Event] = []
    with http.stream("GET", f"/jobs/{job_id}/events", timeout=STREAM_TIMEOUT) as response:
        for event in read_events(response):
            seen.append(event)
            if event.name == "epoch" and event.data["epoch"] == 50:
                break  # the client drops the connection mid-run
    resumed = stream(http, job_id, last_event_id=seen[-1].id)

    assert epochs_of(seen) == list(range(1, 51))
    assert epochs_of(resumed) == list(range(51, 3001))
    assert resumed[-1].name == "end" and resumed[-1].data["status"] == "succeeded"


def test_a_finished_job_replays_its_history_and_ends(http: httpx.Client) -> None:
    job_id = submit(http, "linear", epochs=50)
    wait_for_job(http, job_id)
    events = stream(http, job_id)
    assert epochs_of(events) == list(range(1, 51))
    assert [e.name for e in events[-2:]] == ["status", "end"]
    last_id = next(e.id for e in reversed(events) if e.name == "epoch")
    assert [e.name for e in stream(http, job_id, last_event_id=last_id)] == ["status", "end"]


def test_a_failed_job_ends_with_its_error(http: httpx.Client) -> None:
    job_id = submit(http, "linear", lr=10.0, epochs=1000)
    events = stream(http, job_id)
    end = events[-1]
    assert end.name == "end" and end.data["status"] == "failed"
    assert end.data["error"].startswith("loss diverged at epoch ")
    last = [e for e in events if e.name == "epoch"][-1]
    assert last.data["metrics"]["train_loss"] is None  # NaN travels as null


def test_unknown_job_is_404_json(http: httpx.Client) -> None:
    response = http.get("/jobs/999999/events")
    assert response.status_code == 404
    assert response.json() == {"detail": "no job with id 999999"}
