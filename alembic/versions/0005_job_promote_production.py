"""job promote rule; a production alias for every model that has versions

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("promote", sa.JSON(), nullable=True))
    # Serving now follows the production alias: point it where the newest succeeded job was
    # answering, so an upgraded service keeps answering with the same version.
    connection = op.get_bind()
    newest = connection.execute(
        sa.text(
            "SELECT model, id FROM job WHERE status = 'succeeded' "
            "ORDER BY finished_at DESC, id DESC"
        )
    ).all()
    taken = {
        row[0]
        for row in connection.execute(
            sa.text("SELECT model FROM model_alias WHERE alias = 'production'")
        )
    }
    now = datetime.now(UTC).replace(tzinfo=None)
    for model, job_id in newest:
        if model in taken:
            continue
        taken.add(model)
        connection.execute(
            sa.text(
                "INSERT INTO model_alias (model, alias, job_id, updated_at) "
                "VALUES (:model, 'production', :job_id, :now)"
            ),
            {"model": model, "job_id": job_id, "now": now},
        )


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("promote")
