"""The change feed (core/db/changes.py) on SQLite and PostgreSQL: every write of the order
ledger, the trades or the roll proposals moves its feed's token, seen by a reader on
another connection (another process's Database); a lease renewal and a rolled-back
write move nothing; a writer's own subscribers hear at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pytest

from core.db.changes import ChangeFeed, read, subscribe, unsubscribe
from core.db.repos import RollRepo, StagedOrderRepo, TradeRepo
from core.db.session import Database
from core.db.tables import RollProposal, StagedOrder, Trade

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
    heard: list[dict[str, str]] = []
    subscribe(db.engine, heard.append)
    try:
        StagedOrderRepo(db).add(staged())
        assert [set(h) for h in heard] == [{"orders"}]
        with db.session() as session:
            assert heard[0]["orders"] == read(session)["orders"]  # the token it wrote
    finally:
        unsubscribe(db.engine, heard.append)
    StagedOrderRepo(db).add(staged())
    assert len(heard) == 1


def test_an_own_commit_is_announced_once_and_another_connections_still_is(
        db: Database) -> None:
    """The writer's subscriber announces its commit at once (`committed`); the next look
    reads that token back and does not announce it again. Another connection's write
    after it, or between the commit and its announcement, is still news."""
    feed = ChangeFeed(db)
    feed.changed()
    own: list[set[str]] = []

    def heard(tokens: dict[str, str]) -> None:
        own.append(feed.committed(tokens))

    subscribe(db.engine, heard)
    other = Database(db.url)
    try:
        StagedOrderRepo(db).add(staged())
        assert own == [{"orders"}]
        assert feed.changed() == set()  # its own token, already announced
        StagedOrderRepo(other).add(staged())
        assert feed.changed() == {"orders"}
        # The look reads an own token before its commit's announcement arrives: the
        # look announces it, the late announcement does not repeat it.
        unsubscribe(db.engine, heard)
        late: list[dict[str, str]] = []
        subscribe(db.engine, late.append)
        StagedOrderRepo(db).add(staged())
        assert feed.changed() == {"orders"}
        assert feed.committed(late[0]) == set()
        unsubscribe(db.engine, late.append)
        # A late announcement of an older own commit does not make the newer token, a
        # look announced already, news again.
        StagedOrderRepo(other).add(staged())
        assert feed.changed() == {"orders"}
        assert feed.changed() == set()
    finally:
        unsubscribe(db.engine, heard)
        other.dispose()


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


async def test_an_own_write_is_published_once(db: Database, tmp_path) -> None:
    """A started engine hears its own commit at once (one new version); the feed's next
    look reads that token back and publishes nothing more. Another connection's write
    still publishes, once."""
    from tests.factories import make_settings, sim_engine

    engine = sim_engine(make_settings(tmp_path, PUTDESK_DATABASE_URL=db.url))
    versions: list[int] = []
    engine.add_listener(lambda state: versions.append(state.rolls_version))
    await engine.start()
    try:
        start = engine.state.rolls_version
        proposal = RollProposal(
            position_id="KO", symbol="KO", kind="roll_out", contracts=1,
            old_strike=60.0, old_expiration=date(2026, 12, 18), new_strike=60.0,
            new_expiration=date(2027, 1, 15), new_dte=52, buyback_cost=2.0,
            new_premium=2.5, net_credit=0.5, reason="test", created_at=NOW,
            updated_at=NOW)
        await asyncio.to_thread(engine.rolls.save, proposal)
        # Scheduled from the writing thread before its result: published already.
        assert engine.state.rolls_version == start + 1
        await engine.watch_changes()
        await engine.watch_changes()
        bumps = sorted({v for v in versions if v > start})
        assert bumps == [start + 1]
        other = Database(db.url)
        try:
            RollRepo(other).decide(proposal.id, "PENDING", "REJECTED", "elsewhere", NOW)
        finally:
            other.dispose()
        await engine.watch_changes()
        assert sorted({v for v in versions if v > start}) == [start + 1, start + 2]
    finally:
        await engine.stop()


async def test_an_own_roll_proposal_is_published_once(tmp_path) -> None:
    """The monitor's proposal (a save, then the engine's own word that rolls changed):
    one new rolls version, which the feed's next look does not repeat."""
    from tests.core.monitoring.test_monitoring import pressured_amd
    from tests.core.risk.worlds import write
    from tests.factories import make_settings, sim_engine

    engine = sim_engine(make_settings(tmp_path), write(tmp_path, pressured_amd()))
    versions: list[int] = []
    engine.add_listener(lambda state: versions.append(state.rolls_version))
    await engine.start()
    try:
        start = engine.state.rolls_version
        await engine.monitor_cycle()
        await engine.exits.settled()
        assert [p.status for p in engine.rolls.find()] == ["PENDING"]
        await engine.watch_changes()
        assert sorted({v for v in versions if v > start}) == [start + 1]
    finally:
        await engine.stop()


async def test_an_own_staged_order_is_published_once_with_its_message(tmp_path) -> None:
    """Staging writes the ledger and says so on the status line: one new orders version
    (the commit's) and the message; the feed's next look adds nothing."""
    from tests.core.risk.test_governor import put
    from tests.core.risk.worlds import world, write
    from tests.factories import make_settings, sim_engine

    engine = sim_engine(make_settings(tmp_path), write(tmp_path, world()))
    versions: list[int] = []
    engine.add_listener(lambda state: versions.append(state.orders_version))
    await engine.start()
    try:
        start = engine.state.orders_version
        row = await engine.stage(await engine.check(put("KO", 66)), "tester")
        await engine.watch_changes()
        assert sorted({v for v in versions if v > start}) == [start + 1]
        assert row.order_ref in engine.state.last_message
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
