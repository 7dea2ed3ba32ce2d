import stat
from datetime import date, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from core.clock import NEW_YORK
from core.db.repos import (
    AuditRepo,
    EquityRepo,
    PositionSnapshotRepo,
    SystemStateRepo,
    TradeRepo,
)
from core.db.session import Database, DatabaseError
from core.db.tables import PositionSnapshot, Trade
from tests.factories import T0


def ny(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=NEW_YORK)


def test_migrations_match_the_models(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                SQLModel.metadata)
    assert diff == []
    assert db.current_revision() == "0010"


def columns(db: Database, table: str) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns(table)}


def test_each_spec_migration_is_its_own_revision(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/m.db")
    db.upgrade("0001")
    assert "roll_count" not in columns(db, "trades")
    assert "system_state" not in inspect(db.engine).get_table_names()
    db.upgrade("0002")
    assert {"roll_count", "rolled_from_trade_id"} <= columns(db, "trades")
    assert "assignment_detected" not in columns(db, "trades")
    db.upgrade("0003")
    assert {"assignment_detected", "assignment_date"} <= columns(db, "trades")
    db.upgrade("0004")
    assert columns(db, "system_state") == {"key", "value", "updated_at"}
    db.downgrade("base")
    assert inspect(db.engine).get_table_names() == ["alembic_version"]
    db.upgrade()
    assert db.current_revision() == "0010"


def test_sqlite_is_wal_and_user_only(tmp_path):
    path = tmp_path / "sub" / "p.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_default_sqlite_lives_in_the_user_data_dir(monkeypatch, tmp_path):
    from core.db.session import default_sqlite_url

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    url = default_sqlite_url()
    assert url == f"sqlite:///{tmp_path}/putdesk/putdesk.db"
    assert stat.S_IMODE((tmp_path / "putdesk").stat().st_mode) == 0o700


def test_times_come_back_aware_utc(db):
    repo = AuditRepo(db)
    repo.record("test", "tz", ts=ny("2026-11-24T10:30:00"))
    got = repo.list()[0].ts
    assert got.utcoffset() == timedelta(0)
    assert got == ny("2026-11-24T10:30:00")


def test_naive_times_are_refused(db):
    with pytest.raises(Exception, match="timezone-aware"):
        AuditRepo(db).record("test", "naive", ts=datetime(2026, 11, 24, 10, 30))


def test_system_state_upsert_is_seen_by_another_connection(db):
    SystemStateRepo(db).set("k", "one", T0)
    other = Database(db.url)
    SystemStateRepo(other).set("k", "two", T0 + timedelta(seconds=1))
    assert SystemStateRepo(db).get("k") == ("two", T0 + timedelta(seconds=1))
    assert SystemStateRepo(db).get("missing") is None
    other.dispose()


def test_audit_is_newest_first_and_filters(db):
    repo = AuditRepo(db)
    for i, kind in enumerate(["halt", "order", "resume", "order"]):
        repo.record(kind, f"m{i}", ts=T0 + timedelta(minutes=i), actor="t", data={"i": i})
    assert [e.message for e in repo.list()] == ["m3", "m2", "m1", "m0"]
    assert [e.message for e in repo.list(kinds=["order"])] == ["m3", "m1"]
    assert [e.message for e in repo.list(since=T0 + timedelta(minutes=2))] == ["m3", "m2"]
    assert repo.list(limit=1)[0].data == '{"i": 3}'


def test_equity_closes_and_first_equity_per_account(db):
    repo = EquityRepo(db)
    repo.record(ny("2026-11-20T16:05:00"), 100_000.0, source="close", account="A")
    repo.record(ny("2026-11-20T16:10:00"), 100_100.0, account="A")  # an observation
    repo.record(ny("2026-11-25T09:31:00"), 99_000.0, account="A")
    repo.record(ny("2026-11-25T09:31:00"), 30_000.0, source="close", account="B")
    assert repo.last_close("A", date(2026, 11, 16), date(2026, 11, 22)) == (
        ny("2026-11-20T16:05:00"), 100_000.0)
    assert repo.last_close("A", date(2026, 11, 23), date(2026, 11, 29)) is None
    assert repo.first_since("A", ny("2026-11-23T00:00:00")) == (
        ny("2026-11-25T09:31:00"), 99_000.0)
    assert repo.peak_equity("A") == 100_100.0 and repo.peak_equity("B") == 30_000.0
    assert [r.net_liquidation for r in repo.history(account="B")] == [30_000.0]


def test_rows_from_before_the_account_column_are_claimed_by_the_first_account(tmp_path):
    """Revision 0009 keeps existing rows (account ""); the first account that records
    equity afterwards takes them, so a one-account desk keeps its peak and closes."""
    db = Database(f"sqlite:///{tmp_path}/m.db")
    db.upgrade("0008")  # the shipped head before this revision
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO equity_snapshots (ts, net_liquidation, source) "
                          "VALUES ('2026-11-20 21:05:00', 125000.0, 'broker')"))
    db.upgrade()
    assert "account" in columns(db, "equity_snapshots")
    repo = EquityRepo(db)
    assert repo.peak_equity("") == 125_000.0
    repo.record(ny("2026-11-24T10:00:00"), 100_000.0, account="U1234567")
    assert repo.peak_equity("U1234567") == 125_000.0
    repo.record(ny("2026-11-24T10:00:00"), 50_000.0, account="U7654321")
    assert repo.peak_equity("U7654321") == 50_000.0
    db.downgrade("0008")
    assert "account" not in columns(db, "equity_snapshots")


def test_position_snapshot_upsert_updates_instead_of_duplicating(db):
    trade = TradeRepo(db).add(Trade(symbol="AAPL", strike=200.0, expiration=date(2026, 12, 18),
                                    contracts=2, entry_price=1.85, entry_time=T0,
                                    created_at=T0, updated_at=T0, order_ref="pd-1"))
    repo = PositionSnapshotRepo(db)
    snap = PositionSnapshot(position_id="AAPL 20261218 200 P", trade_id=trade.id,
                            symbol="AAPL", strike=200.0, expiration=date(2026, 12, 18),
                            entry_date=date(2026, 11, 10), contracts=2, delta=-0.12,
                            updated_at=T0)
    assert repo.upsert(snap)
    snap.delta = -0.31
    snap.updated_at = T0 + timedelta(minutes=15)
    assert repo.upsert(snap)
    got = repo.get("AAPL 20261218 200 P")
    assert got is not None and got.delta == -0.31 and got.trade_id == trade.id
    with db.session() as session:
        assert session.execute(text("select count(*) from position_snapshots")).scalar() == 1
    assert TradeRepo(db).by_order_ref("pd-1").roll_count == 0


def test_password_is_redacted():
    db = Database("postgresql+psycopg://putdesk:s3cret-sentinel@db.example:5432/putdesk")
    assert "s3cret-sentinel" not in db.redacted_url
    assert "***" in db.redacted_url


def test_unusable_database_is_a_readable_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DatabaseError, match="Database sqlite:///"):
        Database(f"sqlite:///{blocker}/sub/p.db")
    with pytest.raises(DatabaseError, match="not a database URL"):
        Database("not a url")
