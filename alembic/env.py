"""Alembic environment: torchkiln's tables, on the connection the app hands over."""

from alembic import context
from sqlmodel import SQLModel

import torchkiln.service.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from torchkiln.service.store.db import make_engine
from torchkiln.service.store.settings import Settings

target_metadata = SQLModel.metadata


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    # The `alembic` command line: the database comes from TORCHKILN_DATABASE_URL.
    with make_engine(Settings()).begin() as fresh_connection:
        run_migrations(fresh_connection)
