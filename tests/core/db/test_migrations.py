"""Migrations are all or nothing: a failure injected at any statement inside any revision
(every revision in the script directory, so new ones are covered without editing this
file) leaves the database at the previous revision, with its schema and data as they
were, and a later upgrade succeeds. SQLite and PostgreSQL."""

from __future__ import annotations

import stat
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine

from core.db.session import Database, DatabaseError, head_revision, script_directory

T0 = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)


def revisions() -> list[tuple[str, str | None]]:
    """(revision, the one before it), oldest first."""
    scripts = list(script_directory().walk_revisions())
    return [(s.revision, s.down_revision) for s in reversed(scripts)]


REVISIONS = revisions()


class Injected(Exception):
    pass


def fingerprint(db: Database) -> dict[str, Any]:
    """Tables with their columns and indexes, the revision, and the audit rows."""
    insp = inspect(db.engine)
    tables = {}
    for name in sorted(insp.get_table_names()):
        tables[name] = (sorted(c["name"] for c in insp.get_columns(name)),
                        sorted(i["name"] or "" for i in insp.get_indexes(name)))
    rows: list[Any] = []
    if "audit_events" in tables:
        with db.engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(text(
                "SELECT kind, message FROM audit_events ORDER BY id"))]
    return {"revision": db.current_revision(), "tables": tables, "rows": rows}


def at_revision(db: Database, revision: str | None) -> None:
    if revision is not None:
        db.upgrade(revision)
    if "audit_events" in inspect(db.engine).get_table_names():
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO audit_events (ts, kind, severity, actor, source, "
                              "message) VALUES (:ts, 'test', 'INFO', 't', 't', 'kept')"),
                         {"ts": T0})


def fail_at(monkeypatch: pytest.MonkeyPatch, statement: int) -> list[int]:
    """Make the migration engine raise at its `statement`-th SQL statement (counted from
    1; 0: never, only count). Returns the counter."""
    seen = [0]
    original = Database._migration_engine

    def hooked(self: Database) -> Engine:
        engine = original(self)

        def before(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
            seen[0] += 1
            if seen[0] == statement:
                raise Injected(f"injected at statement {statement}: {sql[:60]}")

        event.listen(engine, "before_cursor_execute", before)
        hooked.listeners.append((engine, before))  # type: ignore[attr-defined]
        return engine

    hooked.listeners = []  # type: ignore[attr-defined]
    monkeypatch.setattr(Database, "_migration_engine", hooked)
    return seen


def remove_hooks() -> None:
    hooked = Database._migration_engine
    for engine, fn in getattr(hooked, "listeners", []):
        if event.contains(engine, "before_cursor_execute", fn):
            event.remove(engine, "before_cursor_execute", fn)


def check_every_failure_point(make_db: Callable[[], Database], target: str, down: str | None,
                              monkeypatch: pytest.MonkeyPatch, points: str) -> None:
    # How many statements does this revision's upgrade take?
    db = make_db()
    at_revision(db, down)
    counter = fail_at(monkeypatch, 0)
    db.upgrade(target)
    remove_hooks()
    total = counter[0]
    db.dispose()
    assert total > 0
    chosen = range(1, total + 1) if points == "all" else sorted({(total + 1) // 2, total})
    for n in chosen:
        db = make_db()
        at_revision(db, down)
        before = fingerprint(db)
        fail_at(monkeypatch, n)
        with pytest.raises((Injected, DatabaseError)):
            db.upgrade(target)
        remove_hooks()
        monkeypatch.undo()
        db.dispose()
        db = Database(db.url)  # a new process, as after a crash
        assert fingerprint(db) == before, f"{target}: statement {n}/{total} left a half state"
        db.upgrade()  # still usable: the upgrade goes through afterwards
        assert db.current_revision() == head_revision()
        assert fingerprint(db)["rows"] == before["rows"]
        db.dispose()


@pytest.mark.parametrize(("target", "down"), REVISIONS, ids=[r for r, _ in REVISIONS])
def test_sqlite_a_failure_anywhere_in_a_revision_leaves_the_previous_one(
        tmp_path, monkeypatch, target, down):
    def make_db() -> Database:
        return Database(f"sqlite:///{tmp_path}/{uuid.uuid4().hex[:8]}.db")

    check_every_failure_point(make_db, target, down, monkeypatch, "all")


@pytest.fixture
def pg_databases(pg_url: str) -> Iterator[Callable[[], Database]]:
    made: list[Database] = []

    def make() -> Database:
        name = f"m_{uuid.uuid4().hex[:12]}"
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        db = Database(pg_url.rsplit("/", 1)[0] + f"/{name}")
        made.append(db)
        return db

    yield make
    for db in made:
        db.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize(("target", "down"), REVISIONS, ids=[r for r, _ in REVISIONS])
def test_postgres_a_failure_inside_a_revision_leaves_the_previous_one(
        pg_databases, monkeypatch, target, down):
    check_every_failure_point(pg_databases, target, down, monkeypatch, "middle-and-last")


def test_an_interrupted_multi_revision_upgrade_keeps_the_revisions_that_finished(
        tmp_path, monkeypatch):
    """Per revision, not per upgrade: the revisions before the failing one stay applied."""
    db = Database(f"sqlite:///{tmp_path}/p.db")
    at_revision(db, REVISIONS[0][0])
    failing = REVISIONS[-1][0]
    original = Database._migration_engine

    def hooked(self: Database) -> Engine:
        engine = original(self)

        def before(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
            if sql.startswith("UPDATE alembic_version") and failing in f"{sql} {args}":
                raise Injected("disk full")

        event.listen(engine, "before_cursor_execute", before)
        return engine

    monkeypatch.setattr(Database, "_migration_engine", hooked)
    with pytest.raises((Injected, DatabaseError)):
        db.upgrade()
    monkeypatch.undo()
    assert Database(db.url).current_revision() == REVISIONS[-1][1]
    db.upgrade()
    assert db.current_revision() == head_revision()


def test_a_sqlite_file_is_copied_before_an_upgrade(tmp_path):
    path = tmp_path / "putdesk.db"
    db = Database(f"sqlite:///{path}")
    old = REVISIONS[-2][0]
    at_revision(db, old)
    db.upgrade()
    copy = tmp_path / f"putdesk.db.pre-{head_revision()}-from-{old}"
    assert copy.exists()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    saved = Database(f"sqlite:///{copy}")
    assert saved.current_revision() == old
    with saved.engine.connect() as conn:
        assert conn.execute(text("SELECT message FROM audit_events")).scalar() == "kept"
    # nothing to copy: a new database, or one already at the head
    fresh = tmp_path / "fresh.db"
    Database(f"sqlite:///{fresh}").upgrade()
    db.upgrade()
    assert sorted(p.name for p in tmp_path.iterdir()
                  if ".pre-" in p.name and not p.name.endswith(("-wal", "-shm"))) == [copy.name]


def test_an_unknown_revision_is_named(tmp_path):
    from core.db.session import UnknownRevisionError

    db = Database(f"sqlite:///{tmp_path}/n.db")
    db.upgrade()
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(UnknownRevisionError, match="revision 0099, which this PutDesk does "
                                                   "not know"):
        db.upgrade()
