"""``torchkiln sweep create|list|show|cancel``: hyper-parameter searches over HTTP.

Only typer at import time: ``torchkiln worker`` loads this module too, and stays lean.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from torchkiln.service.cli.http import ApiKey, Url, call, connect, console
from torchkiln.service.cli.job_commands import load_spec

app = typer.Typer(help="Hyper-parameter sweeps: create from a spec file, list, show, cancel.")
SweepId = Annotated[int, typer.Argument(help="The sweep's id.")]


@app.command()
def create(
    ctx: typer.Context,
    spec: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="JSON or YAML, shaped like POST /sweeps."),
    ],
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Start a sweep from a spec file and print its id and trial count."""
    body = load_spec(spec)
    with connect(ctx, url, api_key) as client:
        sweep = call(client, "POST", "/sweeps", json=body)
    console().print(f"sweep {sweep['id']}: {sweep['trials']} trials of {sweep['model']}")


@app.command("list")
def list_sweeps(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """The newest sweeps as a table."""
    from rich.table import Table

    with connect(ctx, url, api_key) as client:
        page = call(client, "GET", "/sweeps", params={"limit": limit})
    table = Table("id", "model", "metric", "status", "finished", "winner", "created")
    for sweep in page["data"]:
        table.add_row(
            str(sweep["id"]),
            sweep["model"],
            f"{sweep['metric']} ({sweep['mode']})",
            sweep["status"],
            f"{sweep['finished']}/{sweep['trials']}",
            "" if sweep.get("winner_job_id") is None else str(sweep["winner_job_id"]),
            sweep["created_at"][:19].replace("T", " "),
        )
    out = console()
    out.print(table)
    out.print(f"{len(page['data'])} of {page['count']}")


@app.command()
def show(
    ctx: typer.Context,
    sweep_id: SweepId,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """A sweep's leaderboard: best first, pruned trials labelled pruned."""
    from rich.table import Table

    with connect(ctx, url, api_key) as client:
        board = call(client, "GET", f"/sweeps/{sweep_id}")
    out = console()
    winner = board.get("winner_job_id")
    out.print(
        f"sweep {board['id']} {board['status']}: {board['model']}, {board['metric']} "
        f"({board['mode']}), {board['finished']}/{board['trials']} finished"
        + (f", winner job {winner}" if winner is not None else "")
    )
    table = Table("rank", "job", "status", "epoch", board["metric"], "params")
    for trial in board["leaderboard"]:
        table.add_row(
            str(trial["rank"]),
            str(trial["job_id"]),
            trial["status"],
            f"{trial['epoch']}/{trial['epochs']}",
            value_text(trial),
            json.dumps(trial["params"], separators=(", ", ": ")),
        )
    out.print(table)


def value_text(trial: dict[str, Any]) -> str:
    if trial.get("best_value") is None:
        return ""
    return f"{trial['best_value']:.4g} (epoch {trial['best_epoch']})"


@app.command()
def cancel(ctx: typer.Context, sweep_id: SweepId, url: Url = None, api_key: ApiKey = None) -> None:
    """Cancel a sweep: queued trials now, running ones at their next batch."""
    with connect(ctx, url, api_key) as client:
        sweep = call(client, "POST", f"/sweeps/{sweep_id}/cancel")
    console().print(f"sweep {sweep_id} {sweep['status']}")
