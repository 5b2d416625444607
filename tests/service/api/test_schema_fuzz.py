"""Schemathesis over every operation in the app's OpenAPI schema: no 5xx, and responses that
match what the schema promises. Runs in-process against the ASGI app on a fresh SQLite file."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.config import SchemathesisConfig

from tests.conftest import make_settings
from torchkiln.service.api.app import create_app
from torchkiln.service.store.db import upgrade_database, write_session
from torchkiln.service.store.jobs import WorkerIdentity, enqueue_job
from torchkiln.service.store.worker_processes import register_worker

# Per operation; with about twenty operations this keeps the module well under a minute.
EXAMPLES = 25

# Built at import because schemathesis parametrizes at collection time (its fixture-based
# lazy loader does not work with this pytest). Creating the app touches no database; the
# fixture below migrates it and removes the folder.
ROOT = Path(tempfile.mkdtemp(prefix="torchkiln-fuzz-"))
API_KEY = "fuzz-key"
# A long lease keeps the registered worker live, so /readyz answers 200 throughout.
SETTINGS = make_settings(ROOT, f"sqlite:///{ROOT / 'kiln.db'}").model_copy(
    update={"api_key": SecretStr(API_KEY), "lease_s": 3600.0}
)
APP = create_app(SETTINGS)
CONFIG = SchemathesisConfig.from_dict(
    {
        # Schema-valid is not always acceptable here: job params are checked against the
        # chosen model's own options, and a prediction needs a trained job first.
        "checks": {
            "positive_data_acceptance": {"enabled": False},
            # Unknown query parameters are ignored, as most HTTP APIs do; bodies are strict.
            "negative_data_rejection": {"enabled": False},
        },
        "operations": [
            {
                # The coverage phase builds its cases at collection; for the 28x28 and
                # 32x32x3 image bodies that alone takes minutes. Fuzzing still covers them.
                "include-path-regex": "^/predict/(mnist|cifar)",
                "phases": {"coverage": {"enabled": False}},
            }
        ],
    }
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)


@pytest.fixture(scope="module", autouse=True)
def migrated_database() -> Iterator[None]:
    engine = APP.state.engine
    upgrade_database(engine)
    with write_session(engine) as session:
        # Something for the id-taking routes to find besides 404s.
        enqueue_job(
            session=session,
            model="linear",
            params={"epochs": 3, "seed": 0},
            device="auto",
            priority=0,
            max_attempts=3,
        )
    register_worker(engine, WorkerIdentity(host="fuzz-host", pid=1), "cpu")
    yield
    engine.dispose()
    shutil.rmtree(ROOT, ignore_errors=True)


# A stream of a job that never runs here would never end; tests/integration/test_events.py
# covers that route over real HTTP.
@schema.exclude(path_regex=r"/events$").parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_no_server_errors_and_responses_match_the_schema(case: schemathesis.Case) -> None:
    # Schemathesis also sends requests without the key and expects 401 for them.
    case.call_and_validate(headers={"Authorization": f"Bearer {API_KEY}"})
