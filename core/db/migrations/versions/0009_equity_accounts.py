"""equity_snapshots.account: equity history (and so the loss breakers) per account

Revision ID: 0009
Revises: 0008

Existing rows are kept with account "" and are claimed by the first account that records
equity after the upgrade (core/db/repos.py EquityRepo.record).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("equity_snapshots") as batch:
        batch.add_column(sa.Column("account", sa.String(32), nullable=False,
                                   server_default=""))
    op.create_index("ix_equity_snapshots_account", "equity_snapshots", ["account"])


def downgrade() -> None:
    op.drop_index("ix_equity_snapshots_account", "equity_snapshots")
    with op.batch_alter_table("equity_snapshots") as batch:
        batch.drop_column("account")
