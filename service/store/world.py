"""A distributed run's world on its job row: which ranks train it, where, how fast."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from torchkiln.service.store.db import write_session
from torchkiln.service.store.jobs import Lease, fenced_update


def record_world(engine: Engine, lease: Lease, world: dict[str, Any]) -> bool:
    """Store ``world`` (world_size, backend, ranks) while ``lease`` holds the job."""
    with write_session(engine) as session:
        return session.exec(fenced_update(lease).values(distributed=world)).rowcount == 1
