"""docker-compose.yml, checked without a Docker engine: its structure, then `config -q`."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_services_share_the_artifacts_volume(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "api", "worker", "worker-gpu"} <= set(services)
    assert "artifacts" in compose["volumes"]
    for name in ("api", "worker", "worker-gpu"):
        service = services[name]
        assert any(v.startswith("artifacts:") for v in service["volumes"]), name
        url = service["environment"]["TORCHKILN_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://") and "@postgres:" in url
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["command"][:2] == ["torchkiln", "serve"]
    assert services["worker"]["command"][:2] == ["torchkiln", "worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "healthcheck" in services["postgres"]


def test_gpu_worker_reserves_devices_under_a_profile(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["command"][:2] == ["torchkiln", "worker"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_an_s3_compatible_store_comes_under_a_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["minio"]["profiles"] == ["s3"] and "healthcheck" in services["minio"]
    bucket = services["minio-bucket"]
    assert bucket["depends_on"]["minio"]["condition"] == "service_healthy"
    assert "mc mb" in bucket["entrypoint"][-1]
    # The switch is documented beside the settings it replaces.
    assert "# TORCHKILN_ARTIFACTS_URL: s3://" in COMPOSE.read_text()


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="apt-get install docker-compose")
def test_docker_compose_accepts_it() -> None:
    # `config` only parses and validates against the Compose schema: no engine needed.
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
