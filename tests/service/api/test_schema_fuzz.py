"""Schemathesis over every operation in the app's OpenAPI schema, with every check: no 5xx,
responses as the schema promises, schema-valid requests accepted and schema-violating ones
refused, auth enforced; then its stateful phase, calls chained by the ids responses return.
Runs in-process against the ASGI app on a fresh SQLite file.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.config import SchemathesisConfig

from tests.conftest import make_settings
from torchkiln.service.api.app import create_app
from torchkiln.service.api.routes.predict import upload_paths
from torchkiln.service.store.db import upgrade_database, write_session
from torchkiln.service.store.jobs import WorkerIdentity, enqueue_job
from torchkiln.service.store.worker_processes import register_worker

# Schemathesis's own default for positive data: the request may still be unauthorised,
# absent or in conflict, never malformed.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
# Per operation: fuzzing's share; the coverage phase adds its own cases.
EXAMPLES = 15

# Built at import because schemathesis parametrizes at collection time (its fixture-based
# lazy loader does not work with this pytest). Creating the app touches no database; the
# fixture below migrates it and removes the folder.
API_KEY = "fuzz-key"


def fuzz_app(prefix: str) -> tuple[Path, FastAPI]:
    """A fresh folder and an app on its own SQLite file, keyed with API_KEY."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    # A long lease keeps the registered worker live, so /readyz answers 200 throughout.
    settings = make_settings(root, f"sqlite:///{root / 'kiln.db'}").model_copy(
        update={"api_key": SecretStr(API_KEY), "lease_s": 3600.0}
    )
    return root, create_app(settings)


ROOT, APP = fuzz_app("torchkiln-fuzz-")
UPLOAD_PATHS = "|".join(sorted(upload_paths()))
# Schema-valid requests that may still be refused, each for a rule JSON Schema cannot state.
SEMANTIC_422 = [*ACCEPTED, "422"]
CONFIG = SchemathesisConfig.from_dict(
    {
        # Unknown query parameters and headers are ignored on every route, as FastAPI does
        # (cache-busters, tracing headers): an extra one is not invalid data here. Bodies keep
        # their extra-key mutations (they are refused 422).
        "generation": {"allow-extra-parameters": False},
        "operations": [
            {
                # A job spec names other jobs (init_from) and, for sequential, a layer list
                # whose shapes must agree (so does a summary's); a sweep's space and metric
                # must fit its model.
                # Filters of one entry add up (path or method), so name the operations.
                "include-name-regex": r"^POST /(jobs|sweeps|models/\{name\}/summary)$",
                "checks": {"positive_data_acceptance": {"expected-statuses": SEMANTIC_422}},
            },
            {
                # An upload's bytes must decode as an image (415 otherwise): a binary
                # schema cannot say so.
                "include-path-regex": f"^({UPLOAD_PATHS})$",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "415", "422"]}
                },
            },
            {
                # A dataset upload's bytes must be a table or an image archive we can read
                # (415/422 otherwise), within the size limit: a binary schema cannot say so.
                "include-path-regex": "^/datasets$",
                "include-method": "POST",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": [*ACCEPTED, "400", "413", "415", "422"]
                    }
                },
            },
            {
                # Rows are small objects: 10,001 of them (one past maxItems) may pass the body
                # limit first, which refuses them 413 before the schema is read.
                "include-path-regex": "^/predict/tabular$",
                "checks": {
                    "negative_data_rejection": {
                        "expected-statuses": [
                            "400",
                            "401",
                            "403",
                            "404",
                            "406",
                            "409",
                            "413",
                            "415",
                            "422",
                        ]
                    }
                },
            },
            {
                # The Open Inference Protocol answers every refusal 400, with its own error
                # shape; an infer body's tensors must also fit the named model.
                "include-path-regex": "^/v2/models/",
                "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "400"]}},
            },
            {
                # The coverage phase builds its cases at collection; for the 28x28 and
                # 32x32x3 image bodies (sequential takes either) that alone takes minutes.
                # Fuzzing still covers them.
                "include-path-regex": "^/predict/(mnist|cifar|sequential)",
                "phases": {"coverage": {"enabled": False}},
            },
            {
                # A job's params and a summary's body are an anyOf over every model's options
                # and every layer type: the coverage phase walks 11,000 and 4,600 cases for
                # them (two and a half minutes, most of this module). Fuzzing still covers them;
                # test_jobs.py, test_sequential.py and tests/models check the options one by one.
                "include-name-regex": r"^POST /(jobs|models/\{name\}/summary)$",
                "phases": {"coverage": {"enabled": False}},
            },
        ],
    }
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)


@pytest.fixture(scope="module", autouse=True)
def migrated_database() -> Iterator[None]:
    yield from seeded_database(APP, ROOT)


def seeded_database(app: FastAPI, root: Path) -> Iterator[None]:
    """Migrate ``app``'s database, add a job and a live worker; remove ``root`` after."""
    engine = app.state.engine
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
    shutil.rmtree(root, ignore_errors=True)


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
