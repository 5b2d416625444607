"""Acting on one job over HTTP: show, label, cancel, delete, logs, promote, export.

Only typer at import time: ``torchkiln worker`` loads this module too, and stays lean.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from torchkiln.service.cli.http import ApiKey, Url, call, connect, console, request
from torchkiln.service.cli.waits import queue_text

if TYPE_CHECKING:
    import httpx
    from rich.console import Console

JobId = Annotated[int, typer.Argument(help="The job's id.")]
TERMINAL = ("succeeded", "failed", "cancelled")


def show(
    ctx: typer.Context,
    job_id: JobId,
    raw: Annotated[bool, typer.Option("--json", help="The job's JSON as the API has it.")] = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """One job: its state (and why a queued one waits), labels, params and timings."""
    from rich.table import Table

    with connect(ctx, url, api_key) as client:
        job = call(client, "GET", f"/jobs/{job_id}")
    out = console()
    if raw:
        out.print_json(data=job)
        return
    worker = job.get("worker") or {}
    rows = {
        "name": job.get("name"),
        "model": job["model"],
        "status": job["status"],
        "waiting": job.get("waiting_reason"),
        "queue": queue_text(job),
        "epoch": f"{job['epoch']}/{job['epochs']}",
        "device": f"{job.get('device') or '-'} (asked: {job['device_requested']})",
        "worker": f"{worker['host']} pid {worker['pid']}" if worker else None,
        "tags": ", ".join(job.get("tags") or []),
        "note": job.get("note"),
        "best": None if job.get("best_epoch") is None else best_text(job),
        "stop reason": job.get("stop_reason"),
        "error": job.get("error"),
        "created": job["created_at"],
        "started": job.get("started_at"),
        "finished": job.get("finished_at"),
        "seconds": job.get("duration_s"),
        "sweep": job.get("sweep_id"),
        "params": json.dumps(job["params"], separators=(", ", ": ")),
    }
    table = Table(title=f"job {job['id']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for field, value in rows.items():
        if value not in (None, ""):
            table.add_row(field, str(value))
    out.print(table)


def best_text(job: dict[str, Any]) -> str:
    return f"{job['best_value']:.4g} at epoch {job['best_epoch']}"


def label(
    ctx: typer.Context,
    job_id: JobId,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Replace the tags; repeatable.")
    ] = None,
    note: Annotated[str | None, typer.Option(help="A new note.")] = None,
    clear_tags: Annotated[bool, typer.Option(help="Remove every tag.")] = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Set a job's name, tags or note (PATCH /jobs/{id}); what is not given stays."""
    changes: dict[str, Any] = {"name": name, "note": note}
    changes = {k: v for k, v in changes.items() if v is not None}
    if tag or clear_tags:
        changes["tags"] = list(tag or [])
    if not changes:
        raise typer.BadParameter("give --name, --tag, --note or --clear-tags")
    with connect(ctx, url, api_key) as client:
        job = call(client, "PATCH", f"/jobs/{job_id}", json=changes)
    tags = ", ".join(job["tags"]) or "no tags"
    console().print(f"job {job_id}: {job.get('name') or '(no name)'} [{tags}]", markup=False)


def cancel(ctx: typer.Context, job_id: JobId, url: Url = None, api_key: ApiKey = None) -> None:
    """Cancel a job: a queued one now, a running one at its next batch."""
    with connect(ctx, url, api_key) as client:
        job = call(client, "POST", f"/jobs/{job_id}/cancel")
    if job["status"] == "cancelled":
        console().print(f"job {job_id} cancelled")
    else:
        console().print(f"job {job_id}: cancel requested, it stops at its next batch")


def delete(ctx: typer.Context, job_id: JobId, url: Url = None, api_key: ApiKey = None) -> None:
    """Delete a finished job that no alias names: its checkpoints, metrics and record."""
    with connect(ctx, url, api_key) as client:
        call(client, "DELETE", f"/jobs/{job_id}")
    console().print(f"job {job_id} deleted")


def logs(
    ctx: typer.Context,
    job_id: JobId,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the job ends.")
    ] = False,
    interval_s: Annotated[float, typer.Option("--interval", min=0.05, help="Poll seconds.")] = 1.0,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """The job's log lines, as its worker wrote them."""
    out = console()
    with connect(ctx, url, api_key) as client:
        since = print_lines(client, job_id, 0, out)
        while follow:
            # The state is read before the lines, so lines written just before the end
            # are still printed by this last poll.
            is_over = call(client, "GET", f"/jobs/{job_id}")["status"] in TERMINAL
            since = print_lines(client, job_id, since, out)
            if is_over:
                break
            time.sleep(interval_s)


def print_lines(client: httpx.Client, job_id: int, since: int, out: Console) -> int:
    """Print every line from ``since`` on; returns the next cursor."""
    while True:
        page = call(client, "GET", f"/jobs/{job_id}/logs", params={"since": since})
        for line in page["lines"]:
            out.print(log_text(line), markup=False)
            if line.get("exception"):
                out.print(line["exception"], markup=False, style="red")
        if page["next_since"] == since:
            return since
        since = page["next_since"]


def log_text(line: dict[str, Any]) -> str:
    stamp = str(line.get("time", ""))[:19].replace("T", " ")
    return f"{stamp} {line.get('level', '')} {line.get('message', '')}".strip()


def promote(
    ctx: typer.Context,
    job_id: JobId,
    alias: Annotated[str, typer.Argument(help="The alias to point at it, e.g. champion.")],
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Point one of the job's model's aliases at this (succeeded) job."""
    with connect(ctx, url, api_key) as client:
        model = call(client, "GET", f"/jobs/{job_id}")["model"]
        call(client, "PUT", f"/models/{model}/aliases/{alias}", json={"job_id": job_id})
    console().print(f"{model} {alias} -> job {job_id}", markup=False)


def export(
    ctx: typer.Context,
    job_id: JobId,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File or folder; default: the server's file name."),
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Download the job's serving weights (best, else last) as a safetensors file."""
    with connect(ctx, url, api_key) as client:
        response = request(client, "GET", f"/jobs/{job_id}/checkpoint")
    name = attachment_name(response.headers.get("content-disposition", ""), job_id)
    path = output if output is not None else Path(name)
    if path.is_dir():
        path = path / name
    path.write_bytes(response.content)
    console().print(f"{path} ({len(response.content)} bytes)", markup=False)


def attachment_name(disposition: str, job_id: int) -> str:
    """The server's file name, reduced to a bare name: never a path it could steer."""
    found = re.search(r'filename="?([^";]+)"?', disposition)
    name = Path(found.group(1)).name if found else ""
    return name or f"job{job_id}.safetensors"
