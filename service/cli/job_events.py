"""Reading ``GET /jobs/{id}/events`` with httpx, and showing it as a Rich progress bar."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column

# Exit codes of ``torchkiln watch``, from the job's end state.
EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 2}
RECONNECTS = 5
LOSS_NAMES = ("train_loss", "val_loss", "val_accuracy")


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]
    id: str | None


def parse_events(lines: Iterable[str]) -> Iterator[Event]:
    """Server-Sent Events from text lines: ``event:``/``data:``/``id:`` fields, a blank line
    ends each event, ``:`` lines are keep-alive comments."""
    name, data, event_id = "message", [], None
    for line in lines:
        if not line:
            if data:
                yield Event(name, orjson.loads("\n".join(data)), event_id)
            name, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value


def stream_events(client: httpx.Client, job_id: int) -> Iterator[Event]:
    """The job's events until ``end``; a dropped connection resumes after the last event."""
    last_id: str | None = None
    for attempt in range(RECONNECTS + 1):
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            path = f"/jobs/{job_id}/events"
            with client.stream("GET", path, headers=headers, timeout=None) as response:
                response.raise_for_status()
                for event in parse_events(response.iter_lines()):
                    last_id = event.id or last_id
                    yield event
                    if event.name == "end":
                        return
        except httpx.TransportError:
            if attempt == RECONNECTS:
                raise
            time.sleep(min(2**attempt, 10))


def describe(metrics: dict[str, Any]) -> str:
    shown = [f"{name} {metrics[name]:.4g}" for name in LOSS_NAMES if metrics.get(name) is not None]
    return "  ".join(shown)


def job_progress(console: Console) -> Progress:
    """One line as wide as the terminal: the bar and the losses share what the fixed columns
    leave, the losses cut with an ellipsis rather than wrapped (a wrapped live line repeats)."""
    return Progress(
        TextColumn(
            "[bold]job {task.fields[job_id]}[/] {task.fields[status]}",
            table_column=Column(no_wrap=True),
        ),
        BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=5)),
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        TimeElapsedColumn(table_column=Column(no_wrap=True)),
        TextColumn(
            "{task.fields[loss]}",
            table_column=Column(ratio=2, no_wrap=True, overflow="ellipsis"),
        ),
        console=console,
        expand=True,
    )


def watch_job(client: httpx.Client, job_id: int, console: Console) -> str:
    """Show a bar per epoch with the live loss until the job ends; returns the end state."""
    end: dict[str, Any] = {}
    with job_progress(console) as progress:
        task = progress.add_task("", total=None, job_id=job_id, status="", loss="")
        for event in stream_events(client, job_id):
            data = event.data
            fields: dict[str, Any] = {"status": data.get("status", "")}
            if event.name == "epoch":
                fields["loss"] = describe(data.get("metrics", {}))
            progress.update(
                task, total=data.get("epochs") or None, completed=data.get("epoch", 0), **fields
            )
            if event.name == "end":
                end = data
    status = end.get("status", "unknown")
    colour = {"succeeded": "green", "failed": "red"}.get(status, "yellow")
    console.print(f"job {job_id} [{colour}]{status}[/] at epoch {end.get('epoch')}")
    if end.get("error"):
        console.print(f"[red]{end['error']}[/]")
    return status
