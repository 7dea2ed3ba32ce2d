"""Alembic environment: run with the engine the Database object hands over.

Each revision runs in its own transaction together with its alembic_version update
(transaction_per_migration), on SQLite too (transactional_ddl: the engine handed over
issues BEGIN itself, see Database._migration_engine): a revision that fails halfway
leaves the database at the previous revision, not between the two.
"""

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
        transactional_ddl=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.in_transaction():  # the version-table check's autobegin, nothing more
        connection.commit()
