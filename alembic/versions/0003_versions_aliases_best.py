"""model aliases, best checkpoints

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_alias",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model", "alias", name="uq_model_alias_model_alias"),
    )
    with op.batch_alter_table("model_alias", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_alias_job_id"), ["job_id"], unique=False)

    with op.batch_alter_table("checkpoint", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="last", nullable=False)
        )
        batch_op.add_column(sa.Column("metric_value", sa.Float(), nullable=True))

    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("best_epoch", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("best_value", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("best_value")
        batch_op.drop_column("best_epoch")

    with op.batch_alter_table("checkpoint", schema=None) as batch_op:
        batch_op.drop_column("metric_value")
        batch_op.drop_column("kind")

    with op.batch_alter_table("model_alias", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_alias_job_id"))

    op.drop_table("model_alias")
