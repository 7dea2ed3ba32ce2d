"""equity_snapshots.excess_liquidity (margin history, spec 6.2A) and staged_orders
(approved opportunities waiting for the open)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("equity_snapshots") as batch:
        batch.add_column(sa.Column("excess_liquidity", sa.Float(), nullable=True))
    op.create_table(
        "staged_orders",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("right", sa.String(1), nullable=False),
        sa.Column("strike", sa.Float(), nullable=False),
        sa.Column("expiration", sa.Date(), nullable=False),
        sa.Column("contracts", sa.Integer(), nullable=False),
        sa.Column("limit_price", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("order_ref", sa.String(64), nullable=False, unique=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("decision", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
    )
    op.create_index("ix_staged_orders_created_at", "staged_orders", ["created_at"])
    op.create_index("ix_staged_orders_symbol", "staged_orders", ["symbol"])
    op.create_index("ix_staged_orders_status", "staged_orders", ["status"])


def downgrade() -> None:
    op.drop_index("ix_staged_orders_status", "staged_orders")
    op.drop_index("ix_staged_orders_symbol", "staged_orders")
    op.drop_index("ix_staged_orders_created_at", "staged_orders")
    op.drop_table("staged_orders")
    with op.batch_alter_table("equity_snapshots") as batch:
        batch.drop_column("excess_liquidity")
