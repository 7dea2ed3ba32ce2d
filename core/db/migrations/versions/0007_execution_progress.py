"""staged_orders: execution progress (order ids, live limit and its deviation, fills)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS: list[tuple[str, Any]] = [
    ("sent_at", sa.DateTime(timezone=True)),
    ("broker_order_id", sa.Integer()),
    ("perm_id", sa.Integer()),
    ("last_limit", sa.Float()),
    ("limit_deviation", sa.Float()),
    ("avg_fill_price", sa.Float()),
    ("trade_id", sa.String(32)),
]


def upgrade() -> None:
    with op.batch_alter_table("staged_orders") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
        batch.add_column(sa.Column("filled", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("staged_orders") as batch:
        batch.drop_column("filled")
        for name, _kind in reversed(COLUMNS):
            batch.drop_column(name)
