"""The simulator through the Broker protocol, on a small world and a manual clock."""

import asyncio
import time
from datetime import date, datetime, timedelta

import pytest

from core.broker.base import (
    BrokerDisconnected,
    BrokerError,
    BrokerMessage,
    ComboLeg,
    ConnectionChanged,
    FillReceived,
    OptionContract,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionsChanged,
)
from core.broker.scenario import Scenario
from core.broker.sim import SimBroker
from core.clock import NEW_YORK, ManualClock

TUESDAY = datetime(2026, 11, 24, 10, 30, tzinfo=NEW_YORK)
DEC18 = date(2026, 12, 18)
PUT = OptionContract("AAPL", DEC18, 200.0, "P")

WORLD = {
    "version": 1, "now": TUESDAY.isoformat(),
    "account": {"id": "DU1", "cash": 100_000.0}, "vix": 17.0,
    "underlyings": {
        "AAPL": {"price": 230.0, "iv": 0.28, "iv_52w_low": 0.18, "iv_52w_high": 0.55,
                 "earnings": "2027-01-29", "sector": "Information Technology"},
        "SPY": {"price": 660.0, "iv": 0.16, "sector": "Broad Market"},
    },
    "positions": [{"symbol": "AAPL", "strike": 200.0, "expiration": "2026-12-18",
                   "quantity": -2, "avg_price": 1.85}],
    "stock_positions": [{"symbol": "XYZ", "shares": 200, "avg_price": 41.0}],
}


@pytest.fixture
async def sim():
    broker = SimBroker(Scenario.from_data(WORLD), clock=ManualClock(TUESDAY))
    await broker.connect()
    return broker


def sell(contract, price, qty=1, ref="t"):
    return OrderRequest("SELL", qty, ref, contract=contract, limit_price=price)


async def test_quotes_are_sane(sim):
    q = await sim.option_quote(OptionContract("AAPL", DEC18, 210.0, "P"))
    assert 0 <= q.bid < q.ask
    assert -0.5 < q.delta < 0 and q.gamma > 0 and q.vega > 0 and q.theta < 0
    assert q.underlying_price == 230.0 and q.iv > 0.28  # below the money: skew lifts IV
    far = await sim.option_quote(OptionContract("AAPL", DEC18, 100.0, "P"))
    assert far.bid == 0.0 and far.ask == 0.05


async def test_missing_greeks_fault(sim):
    sim.faults.missing_greeks = {"AAPL"}
    q = await sim.option_quote(PUT)
    assert q.delta is None and q.iv is None and q.bid is not None


async def test_account_identities(sim):
    a = await sim.account_values()
    mark = (await sim.option_quote(PUT)).mid
    assert a.available_funds == pytest.approx(a.equity_with_loan - a.init_margin_req)
    assert a.excess_liquidity == pytest.approx(a.equity_with_loan - a.maint_margin_req)
    expected_nlv = 100_000 + 200 * 41.0 - 2 * 100 * sim._mark(PUT)
    assert a.net_liquidation == pytest.approx(expected_nlv)
    assert abs(sim._mark(PUT) - mark) < 0.1
    # the short put's margin is IBKR's rule; the stock (no quote) at 50% init / 25% maint
    assert a.init_margin_req - a.maint_margin_req == pytest.approx(200 * 41.0 * 0.25)


async def test_what_if_matches_the_account_after_the_real_fill(sim):
    c = OptionContract("AAPL", DEC18, 205.0, "P")
    bid = (await sim.option_quote(c)).bid
    w = await sim.what_if(sell(c, bid, qty=2))
    state = await sim.place_order(sell(c, bid, qty=2))
    assert state.status is OrderStatus.FILLED and state.avg_fill_price == bid
    after = await sim.account_values()
    assert w.init_margin_after == pytest.approx(after.init_margin_req)
    assert w.equity_with_loan_after == pytest.approx(after.equity_with_loan)
    assert w.init_margin_change > 0
    assert w.commission == pytest.approx(1.30)


async def test_weekend_order_rests_and_fills_at_the_open(sim):
    sim.clock.set(datetime(2026, 11, 28, 11, 0, tzinfo=NEW_YORK))  # Saturday
    c = OptionContract("AAPL", DEC18, 205.0, "P")
    events = []
    sim.add_listener(events.append)
    state = await sim.place_order(sell(c, 0.01))
    assert state.status is OrderStatus.PRE_SUBMITTED
    assert not await sim.fills()
    sim.advance(timedelta(days=2))  # Monday 11:00 ET
    assert [o.status for o in await sim.open_orders()] == []
    fills = await sim.fills()
    assert len(fills) == 1 and fills[0].order_ref == "t" and fills[0].side == "SELL"
    assert any(isinstance(e, FillReceived) for e in events)


async def test_non_marketable_limit_rests_until_modified(sim):
    c = OptionContract("AAPL", DEC18, 205.0, "P")
    q = await sim.option_quote(c)
    state = await sim.place_order(sell(c, q.ask + 1.0))
    assert state.status is OrderStatus.SUBMITTED and state.remaining == 1
    state = await sim.modify_order(state.order_id, q.bid)
    assert state.status is OrderStatus.FILLED


async def test_combo_roll_fills_both_legs(sim):
    new = OptionContract("AAPL", date(2027, 1, 15), 195.0, "P")
    roll = OrderRequest("SELL", 2, "roll-1", legs=(ComboLeg(PUT, "BUY"), ComboLeg(new, "SELL")),
                        limit_price=0.05)
    state = await sim.place_order(roll)
    assert state.status is OrderStatus.FILLED
    held = {p.contract: p.quantity for p in await sim.positions() if p.contract}
    assert PUT not in held and held[new] == -2
    assert len(await sim.fills()) == 2


async def test_cancel_and_cancel_of_a_done_order(sim):
    c = OptionContract("AAPL", DEC18, 205.0, "P")
    events = []
    sim.add_listener(events.append)
    state = await sim.place_order(sell(c, 50.0))
    await sim.cancel_order(state.order_id)
    assert not await sim.open_orders()
    assert any(isinstance(e, BrokerMessage) and e.code == 202 for e in events)
    with pytest.raises(BrokerError) as err:
        await sim.cancel_order(state.order_id)
    assert err.value.code == 161


async def test_reject_fault(sim):
    sim.faults.reject_orders = "Insufficient margin"
    events = []
    sim.add_listener(events.append)
    state = await sim.place_order(sell(PUT, 0.5))
    assert state.status is OrderStatus.INACTIVE and state.message == "Insufficient margin"
    assert any(isinstance(e, BrokerMessage) and e.code == 201 for e in events)


async def test_partial_fill_then_the_rest(sim):
    c = OptionContract("AAPL", DEC18, 205.0, "P")
    sim.faults.partial_fill = 1
    bid = (await sim.option_quote(c)).bid
    state = await sim.place_order(sell(c, bid, qty=3))
    assert (state.status, state.filled, state.remaining) == (OrderStatus.SUBMITTED, 1, 2)
    sim.advance(timedelta(minutes=1))
    assert not await sim.open_orders()
    assert sum(f.quantity for f in await sim.fills()) == 3


async def test_disconnect_after_accept_leaves_exactly_one_working_order(sim):
    c = OptionContract("AAPL", DEC18, 205.0, "P")
    sim.faults.disconnect_after_accept = True
    events = []
    sim.add_listener(events.append)
    with pytest.raises(BrokerDisconnected):
        await sim.place_order(sell(c, 50.0, ref="pd-7"))
    assert not sim.connected
    assert ConnectionChanged(False, "connection lost after the order was sent") in events
    with pytest.raises(BrokerDisconnected):
        await sim.open_orders()
    await sim.connect()
    working = await sim.open_orders()
    assert [o.order_ref for o in working] == ["pd-7"]


async def test_orders_keep_working_while_the_api_is_down_but_events_wait(sim):
    events = []
    sim.add_listener(events.append)
    c = OptionContract("AAPL", DEC18, 205.0, "P")
    await sim.place_order(sell(c, 3.0, ref="resting"))
    sim.drop_connection("test")
    seen = len(events)
    sim.set_price("AAPL", 190.0)  # the resting order becomes marketable and fills at the broker
    assert len(events) == seen  # like TWS: nothing delivered while the API link is down
    await sim.connect()
    assert [f.order_ref for f in await sim.fills()] == ["resting"]
    assert not await sim.open_orders()


async def test_what_if_faults(sim):
    sim.faults.whatif_timeout = True
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sim.what_if(sell(PUT, 1.0)), timeout=0.05)
    sim.faults.whatif_timeout = False
    sim.faults.whatif_error = "Error validating request"
    with pytest.raises(BrokerError) as err:
        await sim.what_if(sell(PUT, 1.0))
    assert err.value.code == 321


async def test_iv_history_spans_the_52_week_range_and_is_deterministic(sim):
    bars = await sim.iv_history("AAPL")
    assert len(bars) > 250
    assert min(b.iv for b in bars) == pytest.approx(0.18)
    assert max(b.iv for b in bars) == pytest.approx(0.55)
    assert bars[-1].day < TUESDAY.date()
    other = SimBroker(Scenario.from_data(WORLD), clock=ManualClock(TUESDAY))
    await other.connect()
    assert await other.iv_history("AAPL") == bars
    assert await sim.iv_history("SPY") == []  # no 52-week range given: unknown, not made up
    sim.faults.missing_iv_history = {"*"}
    assert await sim.iv_history("AAPL") == []


async def test_itm_put_is_assigned_at_expiry_and_otm_expires(sim):
    c = OptionContract("AAPL", DEC18, 205.0, "P")
    await sim.place_order(sell(c, (await sim.option_quote(c)).bid))
    cash_before = (await sim.account_values()).total_cash
    events = []
    sim.add_listener(events.append)
    sim.set_price("AAPL", 202.0)  # 205 put ITM, 200 put OTM
    sim.clock.set(datetime(2026, 12, 18, 15, 59, tzinfo=NEW_YORK))
    sim.advance(timedelta(minutes=2))
    positions = await sim.positions()
    assert not [p for p in positions if p.sec_type == "OPT"]
    aapl = [p for p in positions if p.symbol == "AAPL" and p.sec_type == "STK"]
    assert aapl and aapl[0].quantity == 100 and aapl[0].avg_cost == 205.0
    assert (await sim.account_values()).total_cash == pytest.approx(cash_before - 20_500)
    assert any(isinstance(e, PositionsChanged) and "assigned" in e.reason for e in events)


async def test_chain_moves_holiday_expirations_to_the_previous_session(sim):
    chain = await sim.option_chain("AAPL")
    assert date(2026, 12, 24) in chain.expirations  # Friday 12-25 is Christmas
    assert date(2026, 12, 25) not in chain.expirations
    assert 200.0 in chain.strikes and all(s % 2.5 == 0 for s in chain.strikes)
    assert await sim.option_chain("NOPE") is None


async def test_random_walk_is_seeded(sim):
    other = SimBroker(Scenario.from_data(WORLD), clock=ManualClock(TUESDAY))
    await other.connect()
    sim.random_walk(5)
    other.random_walk(5)
    assert await sim.underlying_price("AAPL") == await other.underlying_price("AAPL") != 230.0


async def test_requests_fail_cleanly_when_disconnected(sim):
    await sim.disconnect()
    with pytest.raises(BrokerDisconnected):
        await sim.account_values()


async def test_latency_fault(sim):
    sim.faults.latency_seconds = 0.05
    start = time.monotonic()
    await sim.vix()
    assert time.monotonic() - start >= 0.05


async def test_market_order_and_unknown_symbol(sim):
    order = OrderRequest("BUY", 2, "close", contract=PUT, order_type=OrderType.MARKET)
    state = await sim.place_order(order)
    assert state.status is OrderStatus.FILLED
    assert not [p for p in await sim.positions() if p.contract == PUT]
    with pytest.raises(BrokerError) as err:
        await sim.option_quote(OptionContract("NOPE", DEC18, 10.0))
    assert err.value.code == 200
