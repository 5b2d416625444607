"""``torchkiln predict``: image files as a multipart upload, or numbers as the model's JSON."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Annotated, Any

import typer

from torchkiln.service.cli.http import DEFAULT_URL, ApiKey, Url, call, connect, console


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
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Predict from image files (predict mnist seven.png) or numbers
    (predict linear --x 1 2 3; predict logistic_hours 1 4; --json '{"x": [1]}')."""
    files, fields = parse_inputs(list(ctx.args))
    params = {"job_id": job_id} if job_id is not None else {}
    path = f"/predict/{model}"
    with connect(url, api_key) as client:
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
    console().print_json(data=answer)
