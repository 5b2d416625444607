"""job name, tags and note

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs, no batch: on SQLite a batch would copy the job table, and dropping the
    # old one fails its foreign keys once model_alias rows point at jobs (migration 0005).
    op.add_column("job", sa.Column("name", sa.String(length=128), nullable=True))
    # A JSON list; existing rows get an empty one, so readers never see NULL.
    op.add_column(
        "job", sa.Column("tags", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
    )
    op.add_column("job", sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("note")
        batch_op.drop_column("tags")
        batch_op.drop_column("name")
