"""Connections that never finish their request head are closed, not held open forever."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.conftest import make_settings
from tests.utils.live_server import LiveServer

HEAD_DEADLINE_S = 5  # service/cli/main.py KEEP_ALIVE_S


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("connections")
    settings = make_settings(root, f"sqlite:///{root / 'kiln.db'}")
    live = LiveServer(settings, root / "log", workers=0)
    live.start()
    yield live
    live.stop()


def closed_after(server: LiveServer, first_bytes: bytes) -> float:
    """Seconds until the server closes a connection that sent only ``first_bytes``."""
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port)) as sock:
        sock.settimeout(4 * HEAD_DEADLINE_S)
        started = time.monotonic()
        if first_bytes:
            sock.sendall(first_bytes)
        while sock.recv(4096):  # uvicorn sends nothing before the head: wait for EOF
            pass
        return time.monotonic() - started


@pytest.mark.parametrize("first_bytes", [b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b""])
def test_an_unfinished_request_head_is_cut_off(server: LiveServer, first_bytes: bytes) -> None:
    waited = closed_after(server, first_bytes)
    assert HEAD_DEADLINE_S - 0.5 < waited < 2 * HEAD_DEADLINE_S
    with server.client() as http:
        assert http.get("/healthz").status_code == 200
