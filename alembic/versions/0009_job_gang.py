"""job gang: node slots of a multi-host job and its published rendezvous endpoint

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs (see 0006 on why not a batch); old rows are one-node jobs.
    op.add_column("job", sa.Column("gang_nodes", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("job", sa.Column("gang_joined", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("job", sa.Column("gang_endpoint", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("gang_endpoint")
        batch_op.drop_column("gang_joined")
        batch_op.drop_column("gang_nodes")
