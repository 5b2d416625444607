"""The built wheel: one import name, ``torchkiln``, and a ``torchkiln serve`` that finds its
migrations from any directory, installed (not editable) into a fresh virtualenv."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.utils.live_server import free_port

# Our folders' names: none may be importable from an install (alembic is the library's).
OWN_NAMES = {"models", "service", "workers", "tests", "bench"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # From a copy: setuptools' build/ folder keeps files deleted since, and would ship them.
    source = tmp_path_factory.mktemp("source") / "torchkiln"
    skip = shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__", "*.so")
    shutil.copytree(REPO_ROOT, source, ignore=skip)
    # No build isolation: the dev venv's setuptools builds it, so nothing is downloaded.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("torchkiln-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel; its dependencies come from this venv's site-packages
    as a plain path entry, so this checkout's editable finder (a .pth there) never runs."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    purelib = next((root / "lib").glob("python*/site-packages"))
    (purelib / "dev-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(root / "bin" / "python"), "install"]
        + ["--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    return root


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TORCHKILN_"))}
    return {**env, **extra}


def test_the_wheel_holds_one_top_level_name_and_its_data(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"torchkiln"}
    for expected in (
        "torchkiln/alembic/env.py",
        "torchkiln/alembic/script.py.mako",
        "torchkiln/alembic/versions/0001_jobs_metric_points_checkpoints.py",
        "torchkiln/service/api/static/index.html",
        "torchkiln/models/data/diabetes.csv.gz",
        "torchkiln/models/common/registry.py",
    ):
        assert expected in names, expected
    assert not any(name.startswith("torchkiln/tests") for name in names)


def test_installed_it_imports_as_torchkiln_only(venv: Path, tmp_path: Path) -> None:
    code = (
        "import sys, torchkiln.service.api.app, torchkiln.workers.worker, torchkiln.models as m\n"
        f"own = {sorted(OWN_NAMES)!r}\n"
        "assert not [n for n in own if n in sys.modules], [n for n in own if n in sys.modules]\n"
        "assert 'site-packages' in m.__file__, m.__file__\n"
        "assert len(m.REGISTRY) >= 9\n"
    )
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-c", code], check=True, cwd=tmp_path, env=clean_env())


@pytest.fixture
def served(venv: Path, tmp_path: Path) -> Iterator[str]:
    """``torchkiln serve`` from the venv, run in an empty directory far from the checkout."""
    port = free_port()
    env = clean_env(TORCHKILN_DATABASE_URL=f"sqlite:///{tmp_path / 'kiln.db'}")
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(venv / "bin" / "torchkiln"), "serve", "--port", str(port), "--workers", "0"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail((tmp_path / "serve.log").read_text())
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_installed_serve_applies_its_migrations_from_any_directory(served: str) -> None:
    # A job row can only be written once every migration has run.
    response = httpx.post(f"{served}/jobs", json={"model": "linear", "params": {"epochs": 1}})
    assert response.status_code == 201, response.text
    assert httpx.get(f"{served}/jobs/{response.json()['id']}").json()["status"] == "queued"
