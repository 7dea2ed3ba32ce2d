"""add roll_count and rolled_from_trade_id to trades (spec 5.3, migration 1)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.add_column(sa.Column("roll_count", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("rolled_from_trade_id", sa.String(32), nullable=True))
        batch.create_foreign_key("fk_trades_rolled_from", "trades",
                                 ["rolled_from_trade_id"], ["id"])
    # the default only fills existing rows; the model owns the default from now on
    with op.batch_alter_table("trades") as batch:
        batch.alter_column("roll_count", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.drop_constraint("fk_trades_rolled_from", type_="foreignkey")
        batch.drop_column("rolled_from_trade_id")
        batch.drop_column("roll_count")
