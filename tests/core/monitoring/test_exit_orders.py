"""Exits are orders like any other (issue 14): a ledger row each, their own price policy
(never the entry spread rule), run beside monitoring, EXIT STUCK said once, partial
closes keep their realised P&L, a rolled position shows its campaign."""

from __future__ import annotations

import asyncio
import logging

import pytest

from core.broker.base import OrderStatus
from core.models import PositionView
from tests.core.monitoring.test_monitoring import AMD_OLD, position, pressured_amd, quote
from tests.core.risk.worlds import world
from tests.factories import sim_engine

KO_66 = "KO 20261218 66 P"


def ko_short(bid: float, ask: float, avg_price: float = 2.00, **changes) -> dict:
    return world(positions=[position("KO", 66, avg_price=avg_price)],
                 option_quotes={KO_66: quote(bid, ask, -0.55, 0.4)}, **changes)


def view_of(engine, views=None) -> PositionView:
    return next(v for v in (views or engine.monitor.views) if v.symbol == "KO")


async def test_a_stop_on_a_wide_quote_closes(desk):
    """7.00/9.50 is a 36% spread: the entry rule (30%) would refuse it and leave a 312%
    loss open. A close walks from the mid to the ask and fills."""
    engine = await desk(ko_short(7.00, 9.50))
    await engine.monitor_cycle()
    await engine.exits.settled()
    trade = engine.trades.all()[0]
    assert trade.status == "CLOSED" and trade.exit_reason.startswith("stop_loss")
    assert trade.exit_price == pytest.approx(9.50)
    [row] = engine.staged.list(None, kinds=("close",))
    assert (row.status, row.action, row.filled, row.position_id) == ("FILLED", "BUY", 1,
                                                                     KO_66)
    assert row.reprices >= 1 and row.active_key is None and row.lease_until is None
    assert trade.realized_pnl == pytest.approx((2.00 - 9.50) * 100 - (row.commission or 0))


async def test_a_put_bid_at_zero_is_bought_back(desk):
    engine = await desk(ko_short(0.00, 0.05, avg_price=1.00))  # 97% captured
    await engine.monitor_cycle()
    await engine.exits.settled()
    trade = engine.trades.all()[0]
    assert trade.status == "CLOSED" and trade.exit_price == pytest.approx(0.05)


async def test_a_put_bid_at_zero_may_be_left_to_expire(desk):
    kept = await desk(ko_short(0.00, 0.05, avg_price=1.00), EXIT_ZERO_BID_ACTION="let_expire")
    await kept.monitor_cycle()
    await kept.exits.settled()
    assert kept.trades.all()[0].status == "OPEN"
    assert kept.staged.list(None, kinds=("close",)) == []


async def test_closes_run_beside_monitoring(desk):
    """A close working for minutes must not hold up the next cycle's prices and alerts."""
    engine = await desk(ko_short(7.00, 9.50), ORDER_REPRICE_INTERVAL_SECONDS="30",
                        ORDER_TIMEOUT_SECONDS="120")
    await engine.monitor_cycle()
    assert engine.exits.closing == [KO_66]
    loop = asyncio.get_running_loop()
    end = loop.time() + 10
    while not any(r.status == "WORKING" and r.last_limit
                  for r in engine.staged.list(None, kinds=("close",))):
        assert loop.time() < end, "the close did not start working"
        await asyncio.sleep(0.02)
    views = await asyncio.wait_for(engine.monitor_cycle(), 10)  # not blocked by the close
    assert view_of(engine, views).exit_state == "CLOSING at $8.30"
    assert engine.exits.start_close(view_of(engine, views), "again", "test") is False
    engine.adaptive.stop_all("test over")
    await engine.exits.settled()


async def test_an_exit_that_cannot_be_done_is_stuck_on_its_row_and_alerted_once(desk,
                                                                                 caplog):
    engine = await desk(ko_short(7.00, 9.50))
    engine.broker.faults.reject_orders = "no trading permission for this contract"
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            await engine.monitor_cycle()
            await engine.exits.settled()
    stuck = [r for r in caplog.records if "EXIT STUCK" in r.getMessage()]
    assert len(stuck) == 1, [r.getMessage() for r in stuck]
    assert "no trading permission" in stuck[0].getMessage()
    views = await engine.monitor_cycle(exits=False)
    assert view_of(engine, views).exit_state.startswith("EXIT STUCK: Broker rejected")
    assert len(engine.staged.list(("REJECTED",), kinds=("close",))) == 3
    audit = [e for e in engine.audit.list(kinds=["exit_stuck"])]
    assert len(audit) == 1


async def test_a_partial_close_keeps_its_realised_pnl(desk):
    engine = await desk(world(positions=[position("KO", 66, quantity=-3, avg_price=2.00)],
                              option_quotes={KO_66: quote(0.70, 0.80, -0.1, 0.3)}))
    engine.broker.faults.partial_fill = 1  # one of three, then the rest is cancelled
    await engine.monitor_cycle()  # 60% captured: profit target
    await engine.exits.settled()
    trade = engine.trades.all()[0]
    [row] = engine.staged.list(None, kinds=("close",))
    assert row.status == "PARTIAL" and row.filled == 1
    assert trade.status == "OPEN" and trade.contracts == 2
    first = (2.00 - row.avg_fill_price) * 100 - (row.commission or 0) - (trade.commission or 0)
    assert trade.realized_pnl == pytest.approx(first) and row.realized_pnl == pytest.approx(
        first)
    await engine.monitor_cycle()  # the rest closes at the next cycle
    await engine.exits.settled()
    trade = engine.trades.get(trade.id)
    rows = engine.staged.list(None, kinds=("close",))
    second = (2.00 - rows[-1].avg_fill_price) * 200 - (rows[-1].commission or 0)
    assert trade.status == "CLOSED" and trade.realized_pnl == pytest.approx(first + second)


async def test_a_rolled_position_shows_its_campaign(desk):
    engine = await desk(pressured_amd())
    await engine.monitor_cycle()
    await engine.exits.settled()
    [proposal] = engine.rolls.find(("PENDING",))
    done = await engine.roll_manager.approve(proposal.id, "operator")
    assert done.status == "EXECUTED", done.result
    views = await engine.monitor_cycle(exits=False)
    amd = next(v for v in views if v.symbol == "AMD")
    assert amd.campaign is not None and len(amd.campaign.legs) == 2
    old, new = amd.campaign.legs
    assert old.premium == pytest.approx(1.20) and old.buyback is not None
    assert new.buyback is None and new.strike == proposal.new_strike
    assert old.realized_pnl == pytest.approx((1.20 - old.buyback) * 100)
    assert amd.campaign_pnl == pytest.approx(old.realized_pnl + amd.pnl)
    assert amd.as_dict()["campaign"]["original_premium"] == pytest.approx(1.20)
    [roll_row] = engine.staged.list(None, kinds=("roll",))
    assert roll_row.status == "FILLED" and roll_row.position_id == AMD_OLD


async def test_a_halt_during_a_reprice_cancels_the_opening_order_with_no_fill(desk):
    from tests.faults.conftest import quoted, stage

    engine = await desk(quoted(1.00, 1.20), ORDER_REPRICE_INTERVAL_SECONDS="0.3",
                        ORDER_TIMEOUT_SECONDS="60")
    row = await stage(engine, 1.10)
    sending = asyncio.ensure_future(engine.execute())
    loop = asyncio.get_running_loop()
    end = loop.time() + 10
    while not (engine.staged.get(row.id).reprices >= 1):  # after the first reprice
        assert loop.time() < end
        await asyncio.sleep(0.02)
    engine.halt("news", "tester")
    [(_row, result)] = await sending
    assert result.outcome == "CANCELLED" and "Trading halted (news)" in result.reason
    assert [f for f in engine.broker._fills if f.order_ref == row.order_ref] == []
    [order] = [o for o in engine.broker._orders.values() if o.request.order_ref ==
               row.order_ref]
    assert order.status is OrderStatus.CANCELLED


async def test_two_engines_on_one_book_close_a_position_once(tmp_path):
    """Two processes' monitors decide the same close at once: one order."""
    from tests.core.risk.worlds import write
    from tests.factories import make_settings

    settings = make_settings(tmp_path, ORDER_REPRICE_INTERVAL_SECONDS="0.05",
                             ORDER_TIMEOUT_SECONDS="5")
    path = write(tmp_path, ko_short(7.00, 9.50))
    a = sim_engine(settings, path)
    b = sim_engine(settings, path, broker=a.broker)
    for e in (a, b):
        await e.open()
    await a.broker.connect()
    try:
        views = await a.monitor.refresh(notify=False)
        view = view_of(a, views)
        results = await asyncio.gather(a.exits.close(view, "stop", "a"),
                                       b.exits.close(view, "stop", "b"))
        assert sorted(r.outcome for r in results) == ["FILLED", "REJECTED"]
        assert "already working" in next(r.reason for r in results if r.outcome ==
                                          "REJECTED")
        buys = [o for o in a.broker._orders.values() if o.request.action == "BUY"]
        assert len(buys) == 1
    finally:
        for e in (a, b):
            await e.stop()


async def test_a_close_the_operator_cancels_is_not_stuck(desk):
    engine = await desk(ko_short(7.00, 9.50), ORDER_REPRICE_INTERVAL_SECONDS="30",
                        ORDER_TIMEOUT_SECONDS="120")
    await engine.monitor_cycle()
    loop = asyncio.get_running_loop()
    end = loop.time() + 10
    while not (rows := [r for r in engine.staged.list(None, kinds=("close",))
                        if r.status == "WORKING"]):
        assert loop.time() < end
        await asyncio.sleep(0.02)
    await engine.cancel_staged(rows[0].order_ref, "operator")
    await engine.exits.settled()
    assert engine.staged.get(rows[0].id).status == "CANCELLED"
    assert list(engine.audit.list(kinds=["exit_stuck"])) == []
    views = await engine.monitor_cycle(exits=False)
    assert view_of(engine, views).exit_state == ""
