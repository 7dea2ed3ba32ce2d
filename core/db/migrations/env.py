"""Alembic environment: run with the engine the Database object hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import core.db.tables  # noqa: F401 - registers the tables on SQLModel.metadata

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,  # SQLite needs batch mode for ALTER
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
