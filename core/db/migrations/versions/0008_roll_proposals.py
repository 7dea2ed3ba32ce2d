"""roll_proposals: defensive rolls waiting for the operator (spec 5.3)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "roll_proposals",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trade_id", sa.String(32), sa.ForeignKey("trades.id"), nullable=True),
        sa.Column("position_id", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("contracts", sa.Integer(), nullable=False),
        sa.Column("old_strike", sa.Float(), nullable=False),
        sa.Column("old_expiration", sa.Date(), nullable=False),
        sa.Column("new_strike", sa.Float(), nullable=False),
        sa.Column("new_expiration", sa.Date(), nullable=False),
        sa.Column("new_dte", sa.Integer(), nullable=False),
        sa.Column("new_delta", sa.Float(), nullable=True),
        sa.Column("buyback_cost", sa.Float(), nullable=False),
        sa.Column("new_premium", sa.Float(), nullable=False),
        sa.Column("net_credit", sa.Float(), nullable=False),
        sa.Column("margin_change", sa.Float(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("new_trade_id", sa.String(32), nullable=True),
    )
    op.create_index("ix_roll_proposals_created_at", "roll_proposals", ["created_at"])
    op.create_index("ix_roll_proposals_symbol", "roll_proposals", ["symbol"])
    op.create_index("ix_roll_proposals_status", "roll_proposals", ["status"])


def downgrade() -> None:
    for name in ("status", "symbol", "created_at"):
        op.drop_index(f"ix_roll_proposals_{name}", "roll_proposals")
    op.drop_table("roll_proposals")
