"""``torchkiln predict``: image files as a multipart upload, or numbers as the model's JSON."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from torchkiln.service.cli.http import ApiKey, Url, call, connect, console

if TYPE_CHECKING:
    from rich.table import Table


def parse_inputs(args: list[str]) -> tuple[list[Path], dict[str, list[float]]]:
    """``a.png b.png`` → files; ``--hours 1 2.5`` → {"hours": [1.0, 2.5]}; bare numbers
    before any ``--field`` belong to the field named ``""`` (the model's only input)."""
    files: list[Path] = []
    fields: dict[str, list[float]] = {}
    current = ""
    for arg in args:
        if arg.startswith("--") and len(arg) > 2:
            current = arg[2:]
            fields.setdefault(current, [])
            continue
        try:
            fields.setdefault(current, []).append(float(arg))
        except ValueError:
            path = Path(arg)
            if current or not path.is_file():
                raise typer.BadParameter(f"{arg!r} is neither a number nor a file") from None
            files.append(path)
    return files, {k: v for k, v in fields.items() if k or v}


def only_input(client: Any, model: str) -> str:
    """The model's input field, when it has exactly one (``x``, ``hours``, ``points``)."""
    schema = call(client, "GET", f"/models/{model}")["inputs_schema"]
    names = list(schema.get("properties", {}))
    if len(names) != 1:
        raise typer.BadParameter(f"{model} takes {names}: name them, e.g. --{names[0]} 1 2")
    return names[0]


def predict(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name or tag (mnist, cifar10).")],
    body: Annotated[str | None, typer.Option("--json", help="The JSON body as is.")] = None,
    job_id: Annotated[int | None, typer.Option(help="Answer from this job.")] = None,
    alias: Annotated[str | None, typer.Option(help="Answer from the job this alias names.")] = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Print the server's JSON, not a table.")
    ] = False,
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Predict from image files (predict mnist seven.png) or numbers
    (predict linear --x 1 2 3; predict logistic_hours 1 4; --json '{"x": [1]}')."""
    files, fields = parse_inputs(list(ctx.args))
    query = {"job_id": job_id, "alias": alias}
    params = {k: v for k, v in query.items() if v is not None}
    path = f"/predict/{model}"
    payload: dict[str, Any] = {}
    with connect(ctx, url, api_key) as client:
        if files:
            uploads = [
                ("file", (p.name, p.read_bytes(), mimetypes.guess_type(p.name)[0] or "image/png"))
                for p in files
            ]
            answer = call(client, "POST", path, files=uploads, params=params)
        else:
            payload = json.loads(body) if body is not None else {}
            if "" in fields:
                fields[only_input(client, model)] = fields.pop("")
            payload.update(fields)
            if not payload:
                raise typer.BadParameter("give image files, numbers or --json")
            answer = call(client, "POST", path, json=payload, params=params)
    out = console()
    if raw:
        out.print_json(data=answer)
        return
    inputs = {"file": [p.name for p in files]} if files else payload
    out.print(f"job {answer.get('job_id')} ({answer.get('model')})")
    out.print(answer_table(answer, inputs))


def cell(value: Any) -> str:
    """One table cell: numbers short, lists of small records on one line."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return " ".join(cell(v) for v in value.values())
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value)
    return str(value)


def answer_table(answer: dict[str, Any], inputs: dict[str, Any]) -> Table:
    """One row per input: the input's own values first, then each answer list's item (a
    record's fields become columns: digit, probability, top3)."""
    from rich.table import Table

    outputs = {k: v for k, v in answer.items() if isinstance(v, list)}
    rows = max((len(v) for v in outputs.values()), default=0)
    columns: dict[str, list[str]] = {
        name: [cell(v) for v in values]
        for name, values in inputs.items()
        if isinstance(values, list) and len(values) == rows
    }
    for name, values in outputs.items():
        if len(values) != rows:
            continue
        if values and all(isinstance(v, dict) for v in values):
            for key in values[0]:
                columns[key] = [cell(v.get(key)) for v in values]
        else:
            columns[name] = [cell(v) for v in values]
    table = Table(*columns)
    for i in range(rows):
        table.add_row(*(values[i] for values in columns.values()))
    return table
