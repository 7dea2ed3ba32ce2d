"""The schema check every command runs (`Database.upgrade()`), cheap when there is
nothing to do: the head revision comes from the migration files without Alembic, the
database's revision from its version table, and Alembic loads only to migrate."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core.db.session import (
    Database,
    DatabaseError,
    head_revision,
    known_revisions,
    script_directory,
    shipped_revisions,
)


def test_the_shipped_revisions_are_alembics():
    scripts = list(script_directory().walk_revisions())
    as_alembic = {s.revision: (s.down_revision,) if isinstance(s.down_revision, str)
                  else tuple(s.down_revision or ()) for s in scripts}
    assert shipped_revisions() == as_alembic
    assert head_revision() == script_directory().get_current_head()
    assert known_revisions() == {s.revision for s in scripts}


def test_at_the_head_the_check_runs_no_migration(db: Database, monkeypatch):
    import alembic.command

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("Alembic ran on a database at the head")

    monkeypatch.setattr(alembic.command, "upgrade", refuse)
    assert db.current_revision() == head_revision()
    db.upgrade()  # nothing to do, nothing loaded
    with pytest.raises(AssertionError, match="Alembic ran"):
        db.upgrade("0001")  # an explicit target still goes to Alembic


def test_the_revision_is_read_as_alembic_reads_it(db: Database):
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        assert db.current_revision() == MigrationContext.configure(conn).get_current_revision()
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    assert db.current_revision() is None  # an emptied table, as after a downgrade to base
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0009'), ('0010')"))
    with pytest.raises(DatabaseError, match="alembic_version holds 2 revisions"):
        db.current_revision()


def test_a_new_database_has_no_revision(tmp_path):
    assert Database(f"sqlite:///{tmp_path}/new.db").current_revision() is None
