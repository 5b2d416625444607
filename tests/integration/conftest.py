"""A real server process with real worker processes, shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_settings
from tests.utils.live_server import LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root: Path = tmp_path_factory.mktemp("server")
    # One worker: each worker process costs ~4.5 s of CPU to start (torch, torch._dynamo on
    # the first optimizer), and the modules' jobs are small; the tests of two workers'
    # sharing and of their crashes start servers of their own.
    live = LiveServer(make_settings(root, f"sqlite:///{root / 'kiln.db'}"), root / "log", workers=1)
    live.start()
    yield live
    live.stop()


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client
