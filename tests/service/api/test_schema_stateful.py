"""Schemathesis's stateful phase: sequences of calls linked by the ids responses hand back
(POST /jobs -> GET, PATCH, cancel, DELETE /jobs/{job_id}; aliases; sweeps), every check on
each step. On a database of its own: the state a scenario meets must not depend on which
stateless tests ran before it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import FlakyStrategyDefinition

from tests.service.api.test_schema_fuzz import API_KEY, CONFIG, fuzz_app, seeded_database

# Scenarios of up to ten linked calls each.
SCENARIOS = 30

ROOT, APP = fuzz_app("torchkiln-stateful-")
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=CONFIG)
# Generation only: every step changes the database, so replaying a scenario to shrink it
# meets other responses than the first run.
SETTINGS = settings(
    phases=[Phase.generate],
    max_examples=SCENARIOS,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


@pytest.fixture(scope="module", autouse=True)
def migrated_database() -> Iterator[None]:
    yield from seeded_database(APP, ROOT)


# A stream of a job that never runs here would never end.
class StatefulWorkflow(schema.exclude(path_regex=r"/events$").as_state_machine()):  # type: ignore[misc]
    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
        return {"headers": {"Authorization": f"Bearer {API_KEY}"}}


def test_call_sequences_pass_every_check() -> None:
    try:
        StatefulWorkflow.run(settings=SETTINGS)
    except FlakyStrategyDefinition:
        # Hypothesis's complaint that a draw met other database state than before, not a
        # failed check (those raise FailureGroup): once more, on the state as it is now.
        StatefulWorkflow.run(settings=SETTINGS)
