"""Job commands of ``torchkiln`` (submit, watch, jobs, models), over HTTP, near or remote.

Only typer at import time: ``torchkiln worker`` loads this module too, and stays lean.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from torchkiln.service.cli.http import REQUEST_FAILED, ApiKey, Url, call, connect, console
from torchkiln.service.cli.waits import queue_text

if TYPE_CHECKING:
    import httpx


def parse_value(text: str) -> Any:
    """``--param`` values are JSON where they parse (numbers, true, lists), else strings."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def load_spec(path: Path) -> dict[str, Any]:
    """A job spec file, JSON or YAML (YAML reads JSON too), shaped like POST /jobs' body."""
    import yaml

    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict):
        raise typer.BadParameter(f"{path} must hold a mapping like the body of POST /jobs")
    return spec


def build_job(
    model: str | None,
    params: list[str],
    spec_file: Path | None,
    priority: int | None,
    labels: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body = load_spec(spec_file) if spec_file is not None else {}
    body["params"] = dict(body.get("params") or {})
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r}: use --param key=value")
        body["params"][key] = parse_value(value)
    if model is not None:
        body["model"] = model
    if priority is not None:
        body["priority"] = priority
    body.update({k: v for k, v in (labels or {}).items() if v})
    if not body.get("model"):
        raise typer.BadParameter("name a model, or give a spec file with one")
    return body


def submit(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Argument(help="Model name; optional with --spec.")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Option as key=value; repeatable.")
    ] = None,
    spec: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="JSON or YAML job spec.")
    ] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first.")] = None,
    watch: Annotated[bool, typer.Option(help="Then follow it like `torchkiln watch`.")] = False,
    name: Annotated[str | None, typer.Option(help="A name for the job.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag; repeatable.")] = None,
    note: Annotated[str | None, typer.Option(help="Free text kept with the job.")] = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Queue a training job and print its id."""
    body = build_job(model, param or [], spec, priority, {"name": name, "tags": tag, "note": note})
    with connect(ctx, url, api_key) as client:
        job = call(client, "POST", "/jobs", json=body)
        console().print(job["id"])
        if watch:
            follow(client, job["id"])


def follow(client: httpx.Client, job_id: int) -> None:
    from torchkiln.service.cli.job_events import EXIT_CODES, watch_job

    status = watch_job(client, job_id, console())
    raise typer.Exit(EXIT_CODES.get(status, REQUEST_FAILED))


def watch(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(help="The job to follow.")],
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Follow a job epoch by epoch until it ends: exit 0 succeeded, 1 failed, 2 cancelled."""
    with connect(ctx, url, api_key) as client:
        call(client, "GET", f"/jobs/{job_id}")  # a readable 404 before streaming
        follow(client, job_id)


def jobs(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only this state.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only jobs with this tag.")] = None,
    search: Annotated[
        str | None, typer.Option("--search", "-q", help="Text in the name, note or model.")
    ] = None,
    sort: Annotated[
        str | None, typer.Option(help="A column, descending with a leading -: -created_at.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """The newest jobs as a table; a queued job that cannot start says why."""
    from rich.table import Table

    wanted = {"status": status, "model": model, "tag": tag, "q": search, "sort": sort}
    query = {k: v for k, v in wanted.items() if v is not None}
    with connect(ctx, url, api_key) as client:
        page = call(client, "GET", "/jobs", params={**query, "limit": limit})
    table = Table("id", "name", "model", "status", "epoch", "device", "created", "seconds")
    table.add_column("error / waiting / queue", overflow="fold")
    for job in page["data"]:
        table.add_row(
            str(job["id"]),
            job.get("name") or "",
            job["model"],
            job["status"],
            f"{job['epoch']}/{job['epochs']}",
            job.get("device") or job.get("device_requested") or "",
            job["created_at"][:19].replace("T", " "),
            "" if job.get("duration_s") is None else f"{job['duration_s']:.1f}",
            (job.get("error") or job.get("waiting_reason") or queue_text(job) or "")[:80],
        )
    out = console()
    out.print(table)
    out.print(f"{len(page['data'])} of {page['count']}")


def models(ctx: typer.Context, url: Url = None, api_key: ApiKey = None) -> None:
    """The model catalogue as a table."""
    from rich.table import Table

    with connect(ctx, url, api_key) as client:
        catalogue = call(client, "GET", "/models")
    table = Table("name", "task", "tags", "uploads", "summary")
    for spec in catalogue["data"]:
        uploads = "images" if spec["accepts_upload"] else ""
        table.add_row(spec["name"], spec["task"], ", ".join(spec["tags"]), uploads, spec["summary"])
    console().print(table)
