"""add assignment_detected and assignment_date to trades (spec 5.4, migration 2)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.add_column(sa.Column("assignment_detected", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("assignment_date", sa.DateTime(timezone=True),
                                   nullable=True))
    with op.batch_alter_table("trades") as batch:
        batch.alter_column("assignment_detected", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.drop_column("assignment_date")
        batch.drop_column("assignment_detected")
