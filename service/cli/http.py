"""Talking to a torchkiln server: the ``--url``/``--api-key`` options, the client, errors.

Only typer at import time: ``torchkiln worker`` loads the CLI too, and stays lean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import httpx
    from rich.console import Console

DEFAULT_URL = "http://127.0.0.1:8000"
REQUEST_FAILED = 3  # exit code when the server is unreachable or refuses the request

Url = Annotated[str, typer.Option("--url", envvar="TORCHKILN_URL", help="Server address.")]
ApiKey = Annotated[
    str | None,
    typer.Option("--api-key", envvar="TORCHKILN_API_KEY", help="Sent as a Bearer token."),
]


def connect(url: str, api_key: str | None) -> httpx.Client:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """The response's JSON; a readable message and exit code 3 on any failure."""
    import httpx

    try:
        response = client.request(method, path, **kwargs)
    except httpx.TransportError as error:
        console(stderr=True).print(f"[red]cannot reach {client.base_url}: {error}[/]")
        raise typer.Exit(REQUEST_FAILED) from None
    if response.is_error:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        console(stderr=True).print(f"[red]{response.status_code}: {detail}[/]")
        raise typer.Exit(REQUEST_FAILED)
    return response.json()
