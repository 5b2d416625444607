"""Fixtures shared by every test package: settings on a fresh SQLite file, engines, clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.utils.databases import postgres_database
from tests.utils.s3_server import bucket_url, s3_endpoint, s3_env  # noqa: F401 (fixtures)
from torchkiln.service.api.app import create_app
from torchkiln.service.store.db import make_engine, upgrade_database
from torchkiln.service.store.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"
# Folders whose every test starts real servers, browsers or builds: all of them are slow.
SLOW_FOLDERS = ("integration", "ui", "deploy", "packaging")
SLOW_MARKS = ("browser", "shared_data")

# Tests that train in process share two cores with the other test process: torch's default of
# one thread a core oversubscribes them, and OpenMP's waits made a CIFAR test 3.4x slower
# (171 s against 51 s with one thread, the other core busy). Servers and workers the tests
# start set their own threads, as the service does.
torch.set_num_threads(1)
# The longest files, longest first (`--durations` on this machine): `make test` hands files to
# its two processes in collection order, so starting these first keeps one of them from
# finishing a long file alone at the end.
LONGEST_FILES = (
    "integration/test_datasets_e2e.py",
    "integration/test_crash_safety.py",
    "service/api/test_schema_fuzz.py",
    "models/test_sequential_real_data.py",
    "workers/test_gangs.py",
    "ui/test_web_page.py",
    "integration/test_restart.py",
    "workers/test_distributed.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``slow``: live servers, the browser, real data and the wheel build (`make test-fast`
    leaves them out, `make test` runs everything)."""
    for item in items:
        parts = Path(str(item.path)).relative_to(REPO_ROOT / "tests").parts
        if parts[0] in SLOW_FOLDERS or any(item.get_closest_marker(m) for m in SLOW_MARKS):
            item.add_marker(pytest.mark.slow)

    def rank(item: pytest.Item) -> int:
        name = Path(str(item.path)).relative_to(REPO_ROOT / "tests").as_posix()
        return LONGEST_FILES.index(name) if name in LONGEST_FILES else len(LONGEST_FILES)

    items.sort(key=rank)  # stable: each file's tests stay together and in order


def make_settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        artifacts_dir=tmp_path / "artifacts",
        data_dir=tmp_path / "data",
        datasets_dir=tmp_path / "datasets",
        lease_s=3.0,
        poll_interval_s=0.1,
        workers=1,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, f"sqlite:///{tmp_path / 'kiln.db'}")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """The same test on SQLite and on this machine's PostgreSQL."""
    if request.param == "sqlite":
        yield make_settings(tmp_path, f"sqlite:///{tmp_path / 'kiln.db'}")
        return
    with postgres_database() as url:
        yield make_settings(tmp_path, url)


@pytest.fixture
def any_engine(any_db_settings: Settings) -> Iterator[Engine]:
    engine = make_engine(any_db_settings)
    upgrade_database(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    upgrade_database(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
