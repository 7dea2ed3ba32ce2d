"""initial schema: trades, entry snapshots, position snapshots, audit, equity

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "trades",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("right", sa.String(1), nullable=False),
        sa.Column("strike", sa.Float(), nullable=False),
        sa.Column("expiration", sa.Date(), nullable=False),
        sa.Column("contracts", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("entry_price", sa.Float(), nullable=False),
        ts("entry_time"),
        sa.Column("exit_price", sa.Float(), nullable=True),
        ts("exit_time", nullable=True),
        sa.Column("exit_reason", sa.String(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("order_ref", sa.String(64), nullable=True, unique=True),
        sa.Column("perm_id", sa.Integer(), nullable=True),
        sa.Column("commission", sa.Float(), nullable=True),
        sa.Column("realized_pnl", sa.Float(), nullable=True),
        sa.Column("sector", sa.String(64), nullable=True),
        ts("created_at"),
        ts("updated_at"),
    )
    op.create_index("ix_trades_symbol", "trades", ["symbol"])
    op.create_index("ix_trades_status", "trades", ["status"])
    op.create_table(
        "trade_entry_snapshots",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("trade_id", sa.String(32), sa.ForeignKey("trades.id"), nullable=False,
                  unique=True),
        sa.Column("underlying_price", sa.Float(), nullable=True),
        sa.Column("option_bid", sa.Float(), nullable=True),
        sa.Column("option_ask", sa.Float(), nullable=True),
        sa.Column("delta", sa.Float(), nullable=True),
        sa.Column("iv", sa.Float(), nullable=True),
        sa.Column("iv_rank", sa.Float(), nullable=True),
        sa.Column("vix", sa.Float(), nullable=True),
        sa.Column("earnings_date", sa.Date(), nullable=True),
        sa.Column("earnings_in_dte", sa.Boolean(), nullable=True),
        sa.Column("sector", sa.String(64), nullable=True),
        ts("captured_at"),
    )
    op.create_table(
        "position_snapshots",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("position_id", sa.String(64), nullable=False, unique=True),
        sa.Column("trade_id", sa.String(32), sa.ForeignKey("trades.id"), nullable=True),
        sa.Column("symbol", sa.String(16), nullable=False),
        sa.Column("right", sa.String(1), nullable=False),
        sa.Column("strike", sa.Float(), nullable=False),
        sa.Column("expiration", sa.Date(), nullable=False),
        sa.Column("entry_date", sa.Date(), nullable=True),
        sa.Column("contracts", sa.Integer(), nullable=False),
        sa.Column("option_price", sa.Float(), nullable=True),
        sa.Column("delta", sa.Float(), nullable=True),
        sa.Column("underlying_price", sa.Float(), nullable=True),
        sa.Column("pnl", sa.Float(), nullable=True),
        sa.Column("dte", sa.Integer(), nullable=True),
        ts("updated_at"),
    )
    op.create_index("ix_position_snapshots_symbol", "position_snapshots", ["symbol"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        ts("ts"),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(16), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=True),
    )
    op.create_index("ix_audit_events_ts", "audit_events", ["ts"])
    op.create_index("ix_audit_events_kind", "audit_events", ["kind"])
    op.create_table(
        "equity_snapshots",
        sa.Column("id", sa.Integer(), primary_key=True),
        ts("ts"),
        sa.Column("net_liquidation", sa.Float(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
    )
    op.create_index("ix_equity_snapshots_ts", "equity_snapshots", ["ts"])


def downgrade() -> None:
    for table in ("equity_snapshots", "audit_events", "position_snapshots",
                  "trade_entry_snapshots", "trades"):
        op.drop_table(table)
