"""``torchkiln datasets upload|list|show|delete``: uploaded datasets over HTTP.

Only typer at import time: ``torchkiln worker`` loads this module too, and stays lean.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from torchkiln.service.cli.http import ApiKey, Url, call, connect, console

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(help="Uploaded datasets: upload a table or image archive, list, show, delete.")
DatasetId = Annotated[int, typer.Argument(help="The dataset's id.")]


@app.command()
def upload(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="CSV/TSV (optionally .gz), Parquet, or a ZIP/tar(.gz) of <class>/<image> folders.",
        ),
    ],
    name: Annotated[str | None, typer.Option(help="Default: the file's name.")] = None,
    columns: Annotated[
        str | None,
        typer.Option(help="A CSV/TSV without a header row: its column names, comma-separated."),
    ] = None,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Upload a dataset (streamed) and print its id and schema."""
    with connect(ctx, url, api_key) as client, file.open("rb") as data:
        fields = {"name": name, "columns": columns}
        form = {key: value for key, value in fields.items() if value} or None
        # No read timeout: the server converts the whole file before it answers.
        dataset = call(
            client, "POST", "/datasets", files={"file": (file.name, data)}, data=form, timeout=None
        )
    out = console()
    out.print(f"dataset {dataset['id']}: {dataset['name']} ({summary(dataset)})")
    out.print(schema_table(dataset))


@app.command("list")
def list_datasets(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """The newest datasets as a table."""
    from rich.table import Table

    with connect(ctx, url, api_key) as client:
        page = call(client, "GET", "/datasets", params={"limit": limit})
    table = Table("id", "name", "kind", "format", "size", "bytes", "sha256", "created")
    for dataset in page["data"]:
        table.add_row(
            str(dataset["id"]),
            dataset["name"],
            dataset["kind"],
            dataset["format"],
            summary(dataset),
            str(dataset["bytes"]),
            dataset["sha256"][:12],
            dataset["created_at"][:19].replace("T", " "),
        )
    out = console()
    out.print(table)
    out.print(f"{len(page['data'])} of {page['count']}")


@app.command()
def show(
    ctx: typer.Context, dataset_id: DatasetId, url: Url = None, api_key: ApiKey = None
) -> None:
    """A dataset's schema and its first rows (or a few image paths)."""
    with connect(ctx, url, api_key) as client:
        dataset = call(client, "GET", f"/datasets/{dataset_id}")
    out = console()
    out.print(f"dataset {dataset['id']}: {dataset['name']} ({summary(dataset)})")
    out.print(f"sha256 {dataset['sha256']}, {dataset['bytes']} bytes {dataset['format']}")
    out.print(schema_table(dataset))
    for row in dataset["preview"][:5]:
        out.print(json.dumps(row), markup=False)


@app.command()
def delete(
    ctx: typer.Context, dataset_id: DatasetId, url: Url = None, api_key: ApiKey = None
) -> None:
    """Delete a dataset; refused while a queued or running job trains on it."""
    with connect(ctx, url, api_key) as client:
        call(client, "DELETE", f"/datasets/{dataset_id}")
    console().print(f"dataset {dataset_id} deleted")


def summary(dataset: dict[str, Any]) -> str:
    schema = dataset["schema"]
    if dataset["kind"] == "table":
        return f"{schema['rows']} rows x {len(schema['columns'])} columns"
    return f"{schema['images']} images, {len(schema['classes'])} classes"


def schema_table(dataset: dict[str, Any]) -> Table:
    from rich.table import Table

    schema = dataset["schema"]
    if dataset["kind"] == "table":
        table = Table("column", "type", "missing", "distinct", "examples")
        for column in schema["columns"]:
            examples = ", ".join(str(v) for v in column["examples"])
            table.add_row(
                column["name"],
                column["type"],
                str(column["missing"]),
                distinct_text(column),
                examples,
            )
        return table
    splits = sorted(schema["splits"])
    table = Table("class", "images", *splits)
    for entry in schema["classes"]:
        per_split = [str(schema["splits"][s]["classes"].get(entry["name"], 0)) for s in splits]
        table.add_row(entry["name"], str(entry["count"]), *per_split)
    return table


def distinct_text(column: dict[str, Any]) -> str:
    """Exact counts as they are; a capped one (at least 1001) as "1000+"."""
    if column.get("distinct_capped"):
        return f"{column['distinct'] - 1}+"
    return str(column["distinct"])
