"""Engines and sessions. SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE for writes."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import Session

from torchkiln.service.store.settings import Settings

logger = logging.getLogger(__name__)

# The migrations ship inside the package (torchkiln/alembic when installed, ./alembic here).
ALEMBIC_DIR = Path(__file__).resolve().parents[2] / "alembic"
_IMMEDIATE = "torchkiln_begin_immediate"


def make_engine(settings: Settings) -> Engine:
    """An engine for ``settings.database_url``; creates the SQLite file's folder if needed."""
    if not settings.is_sqlite:
        return sa.create_engine(settings.database_url, pool_pre_ping=True)
    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    timeout_s = settings.sqlite_busy_timeout_s
    engine = sa.create_engine(
        settings.database_url, connect_args={"timeout": timeout_s, "check_same_thread": False}
    )

    def configure(dbapi_connection: sqlite3.Connection, record: Any) -> None:
        _configure_sqlite_connection(dbapi_connection, timeout_s)

    sa.event.listen(engine, "connect", configure)
    sa.event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _configure_sqlite_connection(dbapi_connection: sqlite3.Connection, timeout_s: float) -> None:
    # Let SQLAlchemy emit BEGIN itself: pysqlite's implicit BEGIN is always DEFERRED.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
    cursor.close()


def _begin_sqlite_transaction(connection: sa.Connection) -> None:
    # A deferred transaction that later writes can fail with "database is locked" at once,
    # ignoring the busy timeout; IMMEDIATE takes the write lock up front and waits for it.
    is_write = connection.get_execution_options().get(_IMMEDIATE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if is_write else "BEGIN")


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reads; it never holds the SQLite write lock."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction takes the write lock first and commits on success."""
    with Session(engine.execution_options(**{_IMMEDIATE: True}), expire_on_commit=False) as session:
        yield session
        session.commit()


def is_lock_error(error: BaseException) -> bool:
    """True for SQLite's "database is locked"/"busy": a retryable conflict, not a bug."""
    text = str(getattr(error, "orig", error)).lower()
    return isinstance(error, sa.exc.OperationalError) and ("locked" in text or "busy" in text)


def _alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade_database(engine: Engine) -> None:
    """Apply every migration up to head (idempotent); logs the revisions it applied."""
    with engine.execution_options(**{_IMMEDIATE: True}).begin() as connection:
        before = set(MigrationContext.configure(connection).get_current_heads())
        command.upgrade(_alembic_config(connection), "head")
        after = set(MigrationContext.configure(connection).get_current_heads())
    if after != before:
        logger.info(
            "database migrated from %s to %s",
            ", ".join(sorted(before)) or "empty",
            ", ".join(sorted(after)),
        )


def is_at_head(engine: Engine) -> bool:
    """Whether the database's migration revision is the newest one."""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
        head = ScriptDirectory.from_config(_alembic_config(connection)).get_heads()
    return set(current) == set(head)
