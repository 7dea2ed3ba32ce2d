"""What the simulated soak (bench/soak.py) found, each case pinned by a focused test so it
stays covered even on a seed that does not happen to hit it."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from core.broker.base import ComboLeg, OptionContract, OrderRequest, OrderStatus, OrderType
from tests.core.monitoring.test_monitoring import position, pressured_amd, quote
from tests.core.risk.worlds import world
from tests.factories import engines_on_worlds

FAST = {"ORDER_REPRICE_INTERVAL_SECONDS": "0.05", "ORDER_TIMEOUT_SECONDS": "5"}


@pytest.fixture
async def desk(tmp_path):
    async with engines_on_worlds(tmp_path, FAST) as make:
        yield make


async def test_a_roll_approved_while_halted_is_not_sent(desk):
    """A roll sells a new put: with the kill switch on, approving it sends nothing."""
    engine = await desk(pressured_amd())
    await engine.monitor_cycle()
    await engine.exits.settled()
    [proposal] = engine.rolls.find(("PENDING",))
    engine.halt("operator away", "tester")
    done = await engine.roll_manager.approve(proposal.id, "tester")
    assert done.status == "FAILED" and "Trading halted (operator away)" in done.result
    assert engine.broker._orders == {}
    held = [p.contract for p in await engine.broker.positions() if p.sec_type == "OPT"]
    assert [(c.strike, c.expiration) for c in held] == [(200.0, date(2026, 12, 4))]


async def test_a_put_that_expires_worthless_leaves_the_open_trades(desk):
    """Nothing used to close the trade of a put that expired worthless: the database
    kept it OPEN while the broker had no position."""
    engine = await desk(world(positions=[position("KO", 60, "2026-11-27", avg_price=0.30)]),
                        TIME_EXIT_DTE="0")
    engine.clock.advance(timedelta(days=3, hours=6))  # past Friday's (early) close
    engine.broker.process_time()
    assert [p for p in await engine.broker.positions()] == []
    await engine.monitor_cycle(exits=False)
    [trade] = engine.trades.all()
    assert trade.status == "EXPIRED" and trade.exit_reason == "expired worthless"
    assert trade.exit_price == 0.0 and trade.realized_pnl == pytest.approx(30.0)
    assert engine.trades.open_trades() == []
    [event] = engine.audit.list(kinds=["expiry"])
    assert "KO 20261127 60 P expired worthless" in event.message
    await engine.monitor_cycle(exits=False)  # settled once
    assert len(engine.audit.list(kinds=["expiry"])) == 1


async def test_a_put_gone_in_the_money_after_expiry_is_recorded_assigned(desk):
    engine = await desk(world(positions=[position("KO", 80, "2026-11-27")]),
                        TIME_EXIT_DTE="0")
    engine.clock.advance(timedelta(days=3, hours=6))
    engine.broker.process_time()
    await engine.monitor_cycle(exits=False)
    [trade] = engine.trades.all()
    assert trade.status == "ASSIGNED" and trade.assignment_detected


async def test_a_combo_at_its_natural_credit_fills_despite_float_rounding(desk):
    """3.25 - 2.85 is 0.3999999999999999 in floats: the simulator left a roll at its
    natural credit of 0.40 unfilled (the roll then failed after the order timeout)."""
    old = OptionContract("KO", date(2026, 12, 18), 66.0)
    new = OptionContract("KO", date(2027, 1, 15), 66.0)
    engine = await desk(world(positions=[position("KO", 66)],
                              option_quotes={old.key: quote(2.80, 2.85),
                                             new.key: quote(3.25, 3.35)}))
    assert 3.25 - 2.85 < 0.40
    state = await engine.broker.place_order(OrderRequest(
        "SELL", 1, "putdesk-roll-test", legs=(ComboLeg(old, "BUY"), ComboLeg(new, "SELL")),
        order_type=OrderType.LIMIT, limit_price=0.40, symbol="KO"))
    assert state.status is OrderStatus.FILLED


def _on_grid(price: float) -> bool:
    tick = 0.01 if price < 3.0 else 0.05
    return math.isclose(round(price / tick) * tick, price, abs_tol=1e-9)


async def test_quotes_sit_on_the_tick_grid_so_closes_and_opens_reach_the_touch(desk):
    """A mid of 2.93 was quoted 2.85 / 3.01: an ask a limit on the $0.05 grid cannot
    reach, so a close repriced to 3.00 and was cancelled unfilled."""
    engine = await desk(world(positions=[position("AMD", 190)]))
    sim = engine.broker
    assert sim._bid_ask(2.93) == (2.85, 3.05)
    for cents in range(3, 2000):
        bid, ask = sim._bid_ask(cents / 100)
        assert _on_grid(bid) and _on_grid(ask), (cents, bid, ask)
    # A put whose quote straddles $3: the close reprices to the ask and fills.
    straddling = None
    for strike in range(150, 215):
        c = OptionContract("AMD", date(2026, 12, 18), float(strike))
        q = await sim.option_quote(c)
        if q.bid is not None and q.ask is not None and q.bid < 3.0 <= q.ask:
            straddling = c
            break
    assert straddling is not None
    result = await engine.adaptive.place_order(straddling, 1, None, "putdesk-close-grid",
                                               action="BUY")
    assert result.outcome == "FILLED", result.reason


async def test_reconcile_does_not_call_putdesk_closes_unknown(desk):
    """Exits, rolls and assigned-stock sales carry putdesk- refs that are not staged
    orders: reconciliation reported each as 'unknown to PutDesk' forever."""
    engine = await desk(world(positions=[position("AMD", 190)]))
    [view] = await engine.monitor.refresh(notify=False)
    result = await engine.exits.close(view, "test close", "tester")
    assert result.filled == 1, result.reason
    report = await engine.reconcile()
    assert report.unknown_at_broker == [] and report.clean
