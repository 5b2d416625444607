"""Job commands of ``torchkiln`` (submit, watch, jobs, models), over HTTP, near or remote.

Only typer at import time: ``torchkiln worker`` loads this module too, and stays lean.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from torchkiln.service.cli.http import (
    DEFAULT_URL,
    REQUEST_FAILED,
    ApiKey,
    Url,
    call,
    connect,
    console,
)

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
    model: str | None, params: list[str], spec_file: Path | None, priority: int | None
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
    if not body.get("model"):
        raise typer.BadParameter("name a model, or give a spec file with one")
    return body


def submit(
    model: Annotated[str | None, typer.Argument(help="Model name; optional with --spec.")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Option as key=value; repeatable.")
    ] = None,
    spec: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="JSON or YAML job spec.")
    ] = None,
    priority: Annotated[int | None, typer.Option(help="Higher runs first.")] = None,
    watch: Annotated[bool, typer.Option(help="Then follow it like `torchkiln watch`.")] = False,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Queue a training job and print its id."""
    body = build_job(model, param or [], spec, priority)
    with connect(url, api_key) as client:
        job = call(client, "POST", "/jobs", json=body)
        console().print(job["id"])
        if watch:
            follow(client, job["id"])


def follow(client: httpx.Client, job_id: int) -> None:
    from torchkiln.service.cli.job_events import EXIT_CODES, watch_job

    status = watch_job(client, job_id, console())
    raise typer.Exit(EXIT_CODES.get(status, REQUEST_FAILED))


def watch(
    job_id: Annotated[int, typer.Argument(help="The job to follow.")],
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Follow a job epoch by epoch until it ends: exit 0 succeeded, 1 failed, 2 cancelled."""
    with connect(url, api_key) as client:
        call(client, "GET", f"/jobs/{job_id}")  # a readable 404 before streaming
        follow(client, job_id)


def jobs(
    status: Annotated[str | None, typer.Option(help="Only this state.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """The newest jobs as a table."""
    from rich.table import Table

    query = {k: v for k, v in {"status": status, "model": model}.items() if v is not None}
    with connect(url, api_key) as client:
        page = call(client, "GET", "/jobs", params={**query, "limit": limit})
    table = Table("id", "model", "status", "epoch", "device", "created", "seconds", "error")
    for job in page["data"]:
        table.add_row(
            str(job["id"]),
            job["model"],
            job["status"],
            f"{job['epoch']}/{job['epochs']}",
            job.get("device") or "",
            job["created_at"][:19].replace("T", " "),
            "" if job.get("duration_s") is None else f"{job['duration_s']:.1f}",
            (job.get("error") or "")[:60],
        )
    out = console()
    out.print(table)
    out.print(f"{len(page['data'])} of {page['count']}")


def models(url: Url = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """The model catalogue as a table."""
    from rich.table import Table

    with connect(url, api_key) as client:
        catalogue = call(client, "GET", "/models")
    table = Table("name", "task", "tags", "uploads", "summary")
    for spec in catalogue["data"]:
        uploads = "images" if spec["accepts_upload"] else ""
        table.add_row(spec["name"], spec["task"], ", ".join(spec["tags"]), uploads, spec["summary"])
    console().print(table)
