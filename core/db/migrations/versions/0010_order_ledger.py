"""staged_orders becomes the order ledger: every order PutDesk sends (opening sells,
exit closes, roll combos, stock sales) is a row claimed before it is sent, with its kind,
its sender and the sender's lease, reprices, commission and the position it closes.

Revision ID: 0010
Revises: 0009 (no released database is past 0008, so the two new revisions run
in number order)
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

NULLABLE: list[tuple[str, Any]] = [
    ("sender", sa.String(200)),
    ("lease_until", sa.DateTime(timezone=True)),
    ("commission", sa.Float()),
    ("position_id", sa.String(64)),
    ("active_key", sa.String(96)),
    ("realized_pnl", sa.Float()),
    ("cancel_requested", sa.String(200)),
]


def upgrade() -> None:
    with op.batch_alter_table("staged_orders") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False,
                                   server_default="open"))
        batch.add_column(sa.Column("action", sa.String(4), nullable=False,
                                   server_default="SELL"))
        batch.add_column(sa.Column("reprices", sa.Integer(), nullable=False,
                                   server_default="0"))
        for name, kind in NULLABLE:
            batch.add_column(sa.Column(name, kind, nullable=True))
        # A stock sale has no strike or expiration.
        batch.alter_column("strike", existing_type=sa.Float(), nullable=True)
        batch.alter_column("expiration", existing_type=sa.Date(), nullable=True)
        batch.create_index("ix_staged_orders_kind", ["kind"])
        # One working order per position/proposal across every process: a second
        # sender's insert fails on this key (NULL once the order is done).
        batch.create_unique_constraint("uq_staged_orders_active_key", ["active_key"])


def downgrade() -> None:
    with op.batch_alter_table("staged_orders") as batch:
        batch.drop_constraint("uq_staged_orders_active_key", type_="unique")
        batch.drop_index("ix_staged_orders_kind")
        batch.alter_column("expiration", existing_type=sa.Date(), nullable=False)
        batch.alter_column("strike", existing_type=sa.Float(), nullable=False)
        for name, _kind in reversed(NULLABLE):
            batch.drop_column(name)
        batch.drop_column("reprices")
        batch.drop_column("action")
        batch.drop_column("kind")
