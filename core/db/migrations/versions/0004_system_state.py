"""create system_state for the kill switch (spec 8.2, migration 3)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # `putdesk emergency-stop` creates this table itself on a database older than this
    # revision (a halt must land whatever the schema): the same table, kept.
    if sa.inspect(op.get_bind()).has_table("system_state"):
        return
    op.create_table(
        "system_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("system_state")
