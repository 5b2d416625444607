"""Talking to a torchkiln server: the ``--url``/``--api-key`` options, the client, errors.

Only typer at import time: ``torchkiln worker`` loads the CLI too, and stays lean.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import httpx
    from rich.console import Console

DEFAULT_URL = "http://127.0.0.1:8000"
REQUEST_FAILED = 3  # exit code when the server is unreachable or refuses the request
URL_ENV, API_KEY_ENV = "TORCHKILN_URL", "TORCHKILN_API_KEY"


@dataclass(frozen=True)
class Remote:
    """The server the client commands talk to: set before the sub-command (``torchkiln
    --url … jobs``), from the environment, or by a sub-command's own ``--url``."""

    url: str = DEFAULT_URL
    api_key: str | None = None


# Before the sub-command; these read the environment.
GlobalUrl = Annotated[
    str, typer.Option("--url", envvar=URL_ENV, help="Server address, for every sub-command.")
]
GlobalApiKey = Annotated[
    str | None, typer.Option("--api-key", envvar=API_KEY_ENV, help="Sent as a Bearer token.")
]
# After the sub-command: no envvar of their own, so an unset one falls back to the global
# option (which has read the environment) instead of shadowing it.
Url = Annotated[str | None, typer.Option("--url", help="Server address.")]
ApiKey = Annotated[str | None, typer.Option("--api-key", help="Sent as a Bearer token.")]


def remote_of(ctx: typer.Context | None, url: str | None, api_key: str | None) -> Remote:
    """The sub-command's own options win over the global ones, which win over nothing."""
    found = ctx.find_object(Remote) if ctx is not None else None
    base = found or Remote(os.environ.get(URL_ENV, DEFAULT_URL), os.environ.get(API_KEY_ENV))
    return Remote(url or base.url, api_key or base.api_key)


def connect(ctx: typer.Context | None, url: str | None, api_key: str | None) -> httpx.Client:
    import httpx

    remote = remote_of(ctx, url, api_key)
    headers = {"Authorization": f"Bearer {remote.api_key}"} if remote.api_key else {}
    return httpx.Client(base_url=remote.url, headers=headers, timeout=60)


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def error_lines(status: int, detail: Any) -> list[str]:
    """A refusal as lines a person reads: a 422's list becomes one ``field: message`` each."""
    if isinstance(detail, list) and detail and all(isinstance(e, dict) for e in detail):
        lines = [f"{status}: invalid request"]
        for error in detail:
            loc = [str(part) for part in error.get("loc", [])]
            # "body"/"query"/"path" say where FastAPI read it; the rest names the field.
            if loc and loc[0] in ("body", "query", "path", "header"):
                loc = loc[1:]
            lines.append(f"{'.'.join(loc) or 'request'}: {error.get('msg', error)}")
        return lines
    return [f"{status}: {detail}"]


def request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The successful response; a readable message and exit code 3 on any failure."""
    import httpx

    err = console(stderr=True)
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TransportError as error:
        err.print(f"cannot reach {client.base_url}: {error}", style="red", markup=False)
        raise typer.Exit(REQUEST_FAILED) from None
    if response.is_error:
        try:
            detail = response.json().get("detail", response.text)
        except (ValueError, AttributeError):
            detail = response.text
        for line in error_lines(response.status_code, detail):
            # markup=False: messages quote inputs such as "[1, 2]", which Rich would eat.
            err.print(line, style="red", markup=False)
        raise typer.Exit(REQUEST_FAILED)
    return response


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """The response's JSON (None for an empty 204); exit code 3 on any failure."""
    response = request(client, method, path, **kwargs)
    return response.json() if response.content else None
