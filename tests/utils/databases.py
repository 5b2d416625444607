"""Throw-away databases: a SQLite file, or a fresh PostgreSQL database on this machine."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

POSTGRES_SERVER = os.environ.get(
    "TORCHKILN_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create a uniquely named database for one test and drop it afterwards."""
    name = f"torchkiln_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(POSTGRES_SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
