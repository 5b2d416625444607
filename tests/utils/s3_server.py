"""A real S3 endpoint for the tests: moto's standalone server, over HTTP, on a free port.

Only the endpoint is moto's: the code under test talks to it with s3fs as it would to AWS,
configured the standard way (``AWS_ENDPOINT_URL`` and the credential variables). The
fixtures are registered in tests/conftest.py, so one server serves the whole session.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer  # only sessions that use it pay the import

    # Its request lines would fill every failing test's captured log.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The AWS variables for the endpoint, set in this process (children inherit them)."""
    env = {**AWS_ENV, "AWS_ENDPOINT_URL": s3_endpoint}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return env


@pytest.fixture
def bucket_url(s3_env: dict[str, str]) -> str:
    """``s3://<a fresh bucket>/kiln``."""
    import boto3  # moto's own dependency: the test's view of the bucket, not our code's

    name = f"kiln-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return f"s3://{name}/kiln"
