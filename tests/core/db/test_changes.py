"""The change feed (core/db/changes.py) on SQLite and PostgreSQL: every write of the order
ledger, the trades or the roll proposals moves its feed's token, seen by a reader on
another connection (another process's Database); a lease renewal and a rolled-back
write move nothing; a writer's own subscribers hear at once."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.db.changes import ChangeFeed, subscribe, unsubscribe
from core.db.repos import RollRepo, StagedOrderRepo, TradeRepo
from core.db.session import Database
from core.db.tables import StagedOrder, Trade

NOW = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)


def staged(**more: object) -> StagedOrder:
    values: dict[str, object] = dict(
        created_at=NOW, updated_at=NOW, symbol="KO", strike=60.0,
        expiration=date(2026, 12, 31), contracts=1, limit_price=1.0, order_ref="",
        actor="test", decision="{}")
    values.update(more)
    row = StagedOrder(**values)  # type: ignore[arg-type]
    row.order_ref = f"putdesk-{row.id[:16]}"
    return row


def test_each_write_moves_its_feed_and_only_its_feed(db: Database) -> None:
    other = Database(db.url)  # another process's connection to the same database
    try:
        feed = ChangeFeed(other)
        assert feed.changed() == set()  # the first look is the baseline
        orders = StagedOrderRepo(db)
        row = orders.add(staged())
        assert feed.changed() == {"orders"}
        assert feed.changed() == set()
        # A conditional UPDATE (claim, transition ...) is a change like any other; an old
        # row's change counts although neither the count nor the newest time moves.
        newer = orders.add(staged(created_at=NOW.replace(hour=16),
                                  updated_at=NOW.replace(hour=16)))
        feed.changed()
        assert orders.transition(row.id, "STAGED", "CANCELLED", NOW, "by test")
        assert feed.changed() == {"orders"}
        assert orders.claim(newer.id, NOW, "Sending", "me", NOW)
        assert feed.changed() == {"orders"}
        # The lease renewal is no visible change: it announces nothing.
        orders.renew("me", NOW, NOW)
        assert feed.changed() == set()
        TradeRepo(db).add(Trade(symbol="KO", strike=60.0, expiration=date(2026, 12, 31),
                                contracts=1, entry_price=1.0, entry_time=NOW,
                                created_at=NOW, updated_at=NOW))
        assert feed.changed() == {"trades"}
        assert RollRepo(db).decide("no such proposal", "PENDING", "REJECTED", "t", NOW) \
            is False
        assert feed.changed() == {"rolls"}  # a lost race is a harmless extra look
    finally:
        other.dispose()


def test_a_rolled_back_write_moves_nothing(db: Database) -> None:
    feed = ChangeFeed(db)
    feed.changed()
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(staged())
        session.flush()
        raise RuntimeError("the transaction fails after its write")
    assert feed.changed() == set()
    assert StagedOrderRepo(db).list(None) == []


def test_the_writing_process_hears_at_once(db: Database) -> None:
    heard: list[set[str]] = []
    subscribe(db.engine, heard.append)
    try:
        StagedOrderRepo(db).add(staged())
        assert heard == [{"orders"}]
    finally:
        unsubscribe(db.engine, heard.append)
    StagedOrderRepo(db).add(staged())
    assert heard == [{"orders"}]


async def test_the_engine_publishes_only_when_another_connection_changed_something(
        db: Database, tmp_path) -> None:
    """The engine's step of the feed (every kill-switch sync): a new orders version when
    another process wrote the ledger, and no engine event at all when nothing changed."""
    from tests.factories import make_settings, sim_engine

    engine = sim_engine(make_settings(tmp_path, PUTDESK_DATABASE_URL=db.url))
    published = []
    engine.add_listener(published.append)
    await engine.open()
    try:
        await engine.watch_changes()  # the baseline
        before, events = engine.state, len(published)
        assert await engine.watch_changes() == set()
        assert len(published) == events  # nothing changed: nothing published
        other = Database(db.url)
        try:
            StagedOrderRepo(other).add(staged())
        finally:
            other.dispose()
        assert await engine.watch_changes() == {"orders"}
        assert engine.state.orders_version == before.orders_version + 1
        assert engine.state.rolls_version == before.rolls_version
        assert engine.state.trades_version == before.trades_version
    finally:
        await engine.stop()


async def test_an_unreadable_feed_waits_and_misses_nothing(tmp_path, caplog) -> None:
    """The database does not answer: the feed says so once and halts nothing itself (the
    kill switch's sync does that); its next look finds what changed meanwhile."""
    from sqlalchemy.exc import OperationalError

    from tests.factories import make_settings, sim_engine

    engine = sim_engine(make_settings(tmp_path))
    await engine.open()
    try:
        await engine.watch_changes()
        real = engine._changes.changed

        def down() -> set[str]:
            raise OperationalError("SELECT", {}, Exception("database is locked"))

        engine._changes.changed = down  # type: ignore[method-assign]
        StagedOrderRepo(engine.db).add(staged())
        assert await engine.watch_changes() == set()
        assert await engine.watch_changes() == set()
        assert caplog.text.count("Change feed unreadable") == 1
        assert not engine.kill_switch.state.halted
        engine._changes.changed = real  # type: ignore[method-assign]
        assert await engine.watch_changes() == {"orders"}
    finally:
        await engine.stop()
