"""The governor's book snapshot: read once, kept until the broker reports a change (issue
19 item 3: a governor flat in book size), never stale across a fill."""

from __future__ import annotations

from datetime import date, timedelta

from core.broker.base import OrderRequest, OrderType
from core.models import Opportunity
from tests.core.risk.worlds import short_put, world

KO66 = Opportunity("KO", date(2026, 12, 31), 66.0, None)


async def test_the_book_is_read_once_until_the_broker_reports_a_change(desk, monkeypatch):
    engine = await desk(world(positions=[short_put("AAPL", 190), short_put("MSFT", 400)]))
    calls = []
    real = engine.broker.positions

    async def counting():
        calls.append(1)
        return await real()

    monkeypatch.setattr(engine.broker, "positions", counting)
    for _ in range(3):
        decision = await engine.check(KO66)
    assert len(calls) == 1
    assert {c.name: c for c in decision.checks}["max_positions"].figures["open"] == 2
    engine.clock.advance(timedelta(seconds=2))  # past BOOK_MAX_AGE: read again
    await engine.check(KO66)
    assert len(calls) == 2


async def test_a_fill_makes_the_next_check_see_the_new_position(desk):
    engine = await desk()
    assert (await engine.check(KO66)).approved  # the snapshot is now cached
    quote = await engine.broker.option_quote(KO66.contract)
    state = await engine.broker.place_order(OrderRequest(
        "SELL", 1, "putdesk-elsewhere", KO66.contract, order_type=OrderType.LIMIT,
        limit_price=quote.bid))
    assert state.status.value == "Filled"
    again = await engine.check(KO66)
    assert again.rejected_by.name == "duplicate"
    assert again.rejected_by.reason == "Duplicate: already short KO 2026-12-31 66P"


async def test_staged_orders_join_the_snapshot_without_a_recount(desk):
    engine = await desk(world(positions=[short_put("AAPL", 190)]))
    await engine.check(KO66)
    book = await engine.governor.book(pending=[KO66.contract])
    assert book is not None and len(book.contracts) == 2
    assert book.by_symbol["KO"] == 1 and KO66.contract in book.pending_set
    base = await engine.governor.book()
    assert base is not None and len(base.contracts) == 1  # the snapshot itself unchanged
