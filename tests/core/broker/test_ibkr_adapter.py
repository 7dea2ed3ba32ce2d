"""The IBKR adapter end to end: real ib_async over a real socket to the TWS wire-protocol
peer (core/paper), which answers from a simulator world. Every Broker method runs
through the adapter, and the answers are compared with what the same world's simulator
says directly, so the adapter and the simulator are held to one behaviour."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date

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
    OrderStatusChanged,
    OrderType,
)
from core.broker.ibkr import IbkrBroker
from core.broker.scenario import demo_scenario_path, load_scenario
from core.broker.sim import SimBroker
from core.clock import ManualClock
from core.config import load_settings
from core.paper import TwsPeer

AAPL = OptionContract("AAPL", date(2026, 12, 18), 200.0)


@dataclass
class Rig:
    sim: SimBroker
    peer: TwsPeer
    broker: IbkrBroker
    events: list
    ko: OptionContract  # a KO put ~5% out of the money, about five weeks out


async def otm_put(sim: SimBroker, symbol: str) -> OptionContract:
    chain, price = await sim.option_chain(symbol), await sim.underlying_price(symbol)
    today = sim.clock.now().date()
    expiry = min(chain.expirations, key=lambda e: abs((e - today).days - 35))
    strike = min(chain.strikes, key=lambda k: abs(k - 0.95 * price))
    return OptionContract(symbol, expiry, strike)


def adapter(port: int, spare_client_ids: int = 0, **settings: object) -> IbkrBroker:
    values = {"PUTDESK_IBKR_PORT": port, "PUTDESK_IBKR_CONNECT_TIMEOUT": 3,
              "PUTDESK_IBKR_CLIENT_ID": 11, "PUTDESK_IBKR_MARKET_DATA_TIMEOUT": 2,
              "PUTDESK_IBKR_REQUEST_TIMEOUT": 3, **settings}
    return IbkrBroker(load_settings(values).ibkr, spare_client_ids=spare_client_ids)


@pytest.fixture
async def rig():
    rigs: list[Rig] = []

    async def make(**settings: object) -> Rig:
        world = load_scenario(demo_scenario_path())
        sim = SimBroker(world, clock=ManualClock(world.now))
        peer = TwsPeer(sim)
        await peer.start()
        broker = adapter(peer.port, **settings)
        events: list = []
        broker.add_listener(events.append)
        await broker.connect()
        made = Rig(sim, peer, broker, events, await otm_put(sim, "KO"))
        rigs.append(made)
        return made

    yield make
    for r in rigs:
        await r.broker.disconnect()
        await r.peer.stop()


async def until(condition, seconds: float = 10.0) -> None:  # generous on a loaded CI box
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


# --- reads ------------------------------------------------------------------------------


async def test_account_positions_and_time_are_the_worlds(rig):
    r = await rig()
    assert r.broker.connected and r.broker.info().account_id == r.sim.info().account_id
    assert any(isinstance(e, ConnectionChanged) and e.connected for e in r.events)
    got, want = await r.broker.account_values(), await r.sim.account_values()
    for name in ("net_liquidation", "available_funds", "excess_liquidity", "init_margin_req",
                 "maint_margin_req", "equity_with_loan", "total_cash"):
        assert getattr(got, name) == pytest.approx(getattr(want, name), abs=0.01), name
    key = lambda p: (p.sec_type, p.symbol, p.contract)  # noqa: E731
    got_pos = sorted(await r.broker.positions(), key=key)
    want_pos = sorted(await r.sim.positions(), key=key)
    assert [(p.symbol, p.sec_type, p.quantity, p.contract) for p in got_pos] == [
        (p.symbol, p.sec_type, p.quantity, p.contract) for p in want_pos]
    for g, w in zip(got_pos, want_pos, strict=True):
        assert g.avg_cost == pytest.approx(w.avg_cost, abs=0.005)  # per share both ways
    assert abs((await r.broker.current_time() - r.sim.clock.now()).total_seconds()) < 1.5


async def test_market_data_chain_and_iv_history_are_the_worlds(rig):
    r = await rig()
    assert await r.broker.underlying_price("AAPL") == pytest.approx(
        await r.sim.underlying_price("AAPL"), abs=0.01)
    assert await r.broker.vix() == pytest.approx(await r.sim.vix(), abs=0.01)
    assert await r.broker.underlying_iv("AAPL") == pytest.approx(
        await r.sim.underlying_iv("AAPL"), abs=1e-4)
    chain, want = await r.broker.option_chain("AAPL"), await r.sim.option_chain("AAPL")
    assert chain.expirations == want.expirations and chain.strikes == want.strikes
    q, w = await r.broker.option_quote(AAPL), await r.sim.option_quote(AAPL)
    assert (q.bid, q.ask) == (pytest.approx(w.bid), pytest.approx(w.ask))
    for name in ("iv", "delta", "gamma", "theta", "vega", "underlying_price"):
        assert getattr(q, name) == pytest.approx(getattr(w, name), rel=1e-3, abs=1e-4), name
    assert not q.delayed
    hist, want_hist = await r.broker.iv_history("AAPL"), await r.sim.iv_history("AAPL")
    assert len(hist) == len(want_hist) > 200
    assert [p.day for p in hist] == [p.day for p in want_hist]
    assert hist[-1].iv == pytest.approx(want_hist[-1].iv, abs=1e-4)
    sent = r.peer.count("reqHistoricalData")
    assert await r.broker.iv_history("AAPL") == hist  # a day's answer is kept
    assert r.peer.count("reqHistoricalData") == sent


async def test_delayed_market_data_is_marked_delayed(rig):
    r = await rig(PUTDESK_IBKR_MARKET_DATA_TYPE=3)
    q = await r.broker.option_quote(AAPL)
    assert q.delayed and q.bid is not None and q.delta is not None
    assert r.broker.info().extra["market data"] == "delayed"


async def test_missing_data_is_unknown_never_zero(rig):
    r = await rig()
    r.sim.faults.missing_greeks.add("AAPL")
    r.sim.faults.missing_iv_history.add("MSFT")
    q = await r.broker.option_quote(AAPL)
    assert q.bid is not None and q.delta is None and q.iv is None
    assert await r.broker.iv_history("MSFT") == []


@pytest.mark.parametrize(("request_name", "code", "call", "words"), [
    ("reqContractDetails", 200, lambda b: b.underlying_price("ZZZZ"), "No security definition"),
    ("reqMktData", 354, lambda b: b.option_quote(AAPL), "Market data not subscribed"),
    ("reqMktData", 10168, lambda b: b.vix(), "delayed data not enabled"),
])
async def test_ibkr_errors_become_named_broker_errors(rig, request_name, code, call, words):
    r = await rig()
    if code != 200:
        r.peer.error_on(request_name, code, "requested market data is not subscribed")
    with pytest.raises(BrokerError) as err:
        await call(r.broker)
    assert err.value.code == code and words in str(err.value)
    assert r.broker.connected


# --- what-if ------------------------------------------------------------------------------


def sell(contract: OptionContract = AAPL, qty: int = 1, limit: float = 1.0,
         ref: str = "putdesk:t1") -> OrderRequest:
    return OrderRequest("SELL", qty, ref, contract, limit_price=limit)


async def test_what_if_is_the_worlds_margin_and_waits_past_a_sentinel_reply(rig):
    r = await rig()
    order = sell(r.ko, 2, 1.10)
    want = await r.sim.what_if(order)
    r.peer.whatif_sentinel_first = True
    got = await asyncio.wait_for(r.broker.what_if(order), 5)
    assert got.init_margin_change == pytest.approx(want.init_margin_change, abs=0.01)
    assert got.equity_with_loan_after == pytest.approx(want.equity_with_loan_after, abs=0.01)
    assert got.commission == pytest.approx(want.commission)
    assert not r.sim._orders  # a what-if places nothing
    assert await r.broker.open_orders() == []


async def test_what_if_of_a_roll_combo(rig):
    r = await rig()
    roll = OrderRequest("SELL", 2, "whatif-roll", legs=(
        ComboLeg(AAPL, "BUY"), ComboLeg(OptionContract("AAPL", date(2027, 1, 15), 195.0),
                                        "SELL")), limit_price=0.10, symbol="AAPL")
    want = await r.sim.what_if(roll)
    got = await asyncio.wait_for(r.broker.what_if(roll), 5)
    assert got.init_margin_change == pytest.approx(want.init_margin_change, abs=0.01)


async def test_what_if_error_is_a_named_error_and_a_silent_one_can_be_bounded(rig):
    r = await rig()
    r.sim.faults.whatif_error = "Invalid order: margin engine unavailable"
    with pytest.raises(BrokerError) as err:
        await asyncio.wait_for(r.broker.what_if(sell(r.ko, 1, 1.0)), 5)
    assert "margin engine unavailable" in str(err.value)
    r.sim.faults.whatif_error = None
    r.sim.faults.whatif_timeout = True
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(r.broker.what_if(sell(r.ko, 1, 1.0)), 0.5)
    assert r.broker.connected  # a silent what-if never blocks the connection
    assert await r.broker.vix() is not None


# --- orders -------------------------------------------------------------------------------


async def test_a_marketable_order_fills_with_its_commission_and_order_ref(rig):
    r = await rig()
    bid = (await r.sim.option_quote(r.ko)).bid
    state = await r.broker.place_order(sell(r.ko, 2, bid, "putdesk:fill"))
    assert state.order_ref == "putdesk:fill" and state.order_id > 0
    await until(lambda: any(isinstance(e, OrderStatusChanged)
                            and e.state.status is OrderStatus.FILLED for e in r.events))
    fills = [e.fill for e in r.events if isinstance(e, FillReceived)]
    assert sum(f.quantity for f in fills) == 2 and fills[0].order_ref == "putdesk:fill"
    assert fills[0].commission == pytest.approx(r.sim._fills[-1].commission)
    assert fills[0].side == "SELL" and fills[0].contract == r.ko
    # Filled is reported after the fills, as the simulator does
    first_fill = next(i for i, e in enumerate(r.events) if isinstance(e, FillReceived))
    filled = next(i for i, e in enumerate(r.events) if isinstance(e, OrderStatusChanged)
                  and e.state.status is OrderStatus.FILLED)
    assert first_fill < filled
    done = [e.state for e in r.events if isinstance(e, OrderStatusChanged)][-1]
    assert done.filled == 2 and done.avg_fill_price == pytest.approx(bid)
    assert [f.exec_id for f in await r.broker.fills()] == [f.exec_id for f in fills]
    held = {p.contract: p.quantity for p in await r.broker.positions()}
    assert held[r.ko] == -2


async def test_a_resting_order_is_repriced_then_cancelled(rig):
    r = await rig()
    q = await r.sim.option_quote(r.ko)
    state = await r.broker.place_order(sell(r.ko, 1, round(q.ask + 0.5, 2), "putdesk:rest"))
    [working] = await r.broker.open_orders()
    assert working.order_id == state.order_id and working.order_ref == "putdesk:rest"
    assert working.request.limit_price == pytest.approx(round(q.ask + 0.5, 2))
    modified = await r.broker.modify_order(state.order_id, round(q.ask + 0.25, 2))
    assert modified.request.limit_price == pytest.approx(round(q.ask + 0.25, 2))
    await until(lambda: r.sim._orders and next(iter(r.sim._orders.values())).request
                .limit_price == pytest.approx(round(q.ask + 0.25, 2)))
    await r.broker.cancel_order(state.order_id)
    await until(lambda: any(isinstance(e, OrderStatusChanged) and e.state.status
                            is OrderStatus.CANCELLED for e in r.events))
    assert await r.broker.open_orders() == []
    with pytest.raises(BrokerError):
        await r.broker.cancel_order(state.order_id)


async def test_an_order_acknowledged_during_an_open_orders_request_is_listed_once(rig):
    """IBKR acknowledges a new order with openOrder; when that arrives while an open-orders
    request is out, ib_async adds it to the answer as well as the reply's own openOrder
    for it: the same order came back twice (seen under load, when the acknowledgement took
    longer than the pacer's spacing). Unpaced here, the request always goes out first."""
    r = await rig()
    r.broker.pacer.interval = 0.0  # the request leaves before the acknowledgement is read
    q = await r.sim.option_quote(r.ko)
    state = await r.broker.place_order(sell(r.ko, 1, round(q.ask + 0.5, 2), "putdesk:once"))
    assert [o.order_id for o in await r.broker.open_orders()] == [state.order_id]


async def test_a_position_update_during_a_positions_request_is_listed_once(rig):
    """The same for positions: an update (a fill elsewhere, an assignment) that arrives
    while a positions request is out is in ib_async's answer beside the reply's row for
    the same contract; the later message is the newer."""
    r = await rig()
    r.broker.pacer.interval = 0.0
    [intc] = [p for p in r.broker.ib.positions() if p.contract.symbol == "INTC"]
    asking = asyncio.ensure_future(r.broker.positions())
    await asyncio.sleep(0)  # the request is out; its reply needs the peer's turn
    r.broker.ib.wrapper.position(intc.account, intc.contract, 300.0, intc.avgCost)
    shares = [p.quantity for p in await asking if p.symbol == "INTC"]
    assert shares == [200]  # the reply's row came after the update, as TWS sends them


async def test_a_rejected_order_is_a_rejection_with_the_brokers_reason(rig):
    r = await rig()
    r.sim.faults.reject_orders = "insufficient margin for naked options"
    await r.broker.place_order(sell(r.ko, 1, 0.5, "putdesk:rej"))
    await until(lambda: any(isinstance(e, OrderStatusChanged) and e.state.status.is_done
                            for e in r.events))
    final = [e.state for e in r.events if isinstance(e, OrderStatusChanged)][-1]
    assert final.status is OrderStatus.INACTIVE
    assert "insufficient margin" in final.message
    messages = [e for e in r.events if isinstance(e, BrokerMessage) and e.code == 201]
    assert messages and messages[0].order_ref == "putdesk:rej"


async def test_a_roll_is_one_combo_order(rig):
    r = await rig()
    new = OptionContract("AAPL", date(2027, 1, 15), 195.0)
    q_old, q_new = await r.sim.option_quote(AAPL), await r.sim.option_quote(new)
    credit = round(q_new.bid - q_old.ask, 2)
    roll = OrderRequest("SELL", 2, "putdesk:roll", legs=(ComboLeg(AAPL, "BUY"),
                                                         ComboLeg(new, "SELL")),
                        limit_price=credit, symbol="AAPL")
    await r.broker.place_order(roll)
    await until(lambda: any(isinstance(e, OrderStatusChanged)
                            and e.state.status is OrderStatus.FILLED for e in r.events))
    held = {p.contract: p.quantity for p in await r.broker.positions() if p.contract}
    assert AAPL not in held and held[new] == -2
    fills = [e.fill for e in r.events if isinstance(e, FillReceived)]
    assert {(f.contract, f.side, f.quantity) for f in fills} == {(AAPL, "BUY", 2),
                                                                  (new, "SELL", 2)}


async def test_stock_sale_after_assignment(rig):
    r = await rig()
    await r.broker.place_order(OrderRequest("SELL", 200, "putdesk:stk", stock="INTC",
                                            order_type=OrderType.MARKET))
    await until(lambda: any(isinstance(e, OrderStatusChanged)
                            and e.state.status is OrderStatus.FILLED for e in r.events))
    assert "INTC" not in {p.symbol for p in await r.broker.positions() if p.sec_type == "STK"}


async def test_read_only_connection_refuses_orders_before_sending(rig):
    r = await rig(PUTDESK_IBKR_READONLY=True)
    sent = r.peer.count("placeOrder")
    for call in (r.broker.place_order(sell(r.ko, 1, 1.0)), r.broker.what_if(sell()),
                 r.broker.cancel_order(1)):
        with pytest.raises(BrokerError, match="read-only"):
            await call
    assert r.peer.count("placeOrder") == sent
    assert r.broker.info().read_only


# --- connection ---------------------------------------------------------------------------


async def test_a_drop_mid_order_then_reconnect_finds_the_same_order_once(rig):
    r = await rig()
    q = await r.sim.option_quote(r.ko)
    r.peer.drop_on("placeOrder")  # accepted by the world, then the socket closes
    state = await r.broker.place_order(sell(r.ko, 1, round(q.ask + 0.3, 2), "putdesk:drop"))
    await until(lambda: not r.broker.connected)
    assert any(isinstance(e, ConnectionChanged) and not e.connected for e in r.events)
    with pytest.raises(BrokerDisconnected):
        await r.broker.open_orders()
    await r.broker.connect()
    [again] = await r.broker.open_orders()
    assert (again.order_id, again.order_ref) == (state.order_id, "putdesk:drop")
    assert len(r.sim._orders) == 1
    await r.broker.cancel_order(again.order_id)  # the reconnected session owns it
    await until(lambda: not [o for o in r.sim._orders.values() if not o.status.is_done])


async def test_tws_losing_ibkr_blocks_until_the_engine_reconnects(rig):
    r = await rig()
    r.peer.send_error(-1, 1100, "Connectivity between IB and TWS has been lost.")
    await until(lambda: not r.broker.connected)
    with pytest.raises(BrokerDisconnected):
        await r.broker.place_order(sell(r.ko, 1, 1.0))
    with pytest.raises(BrokerError, match="1100"):
        await r.broker.connect()
    r.peer.send_error(-1, 1102, "Connectivity between IB and TWS has been restored - "
                      "data maintained.")
    await asyncio.sleep(0.2)
    assert not r.broker.connected  # not before the engine's connect() has reconciled
    await r.broker.connect()
    assert r.broker.connected
    states = [e.connected for e in r.events if isinstance(e, ConnectionChanged)]
    assert states == [True, False, True]


async def test_a_client_id_in_use_is_named(rig):
    r = await rig()
    second = adapter(r.peer.port)  # the same client id as the first
    with pytest.raises(BrokerError) as err:
        await second.connect()
    assert "client id" in str(err.value).lower() or "326" in str(err.value)
    assert r.broker.connected


async def test_a_burst_stays_under_ibkrs_message_rate(rig, caplog):
    r = await rig()
    symbols = ["AAPL", "MSFT", "NVDA", "AMD", "KO", "PG", "JPM", "XOM", "WMT", "COST"]
    start = len(r.peer.received)
    with caplog.at_level(logging.WARNING):
        prices = await asyncio.gather(*[r.broker.underlying_price(s)
                                        for s in symbols * 3])
    assert all(p is not None for p in prices)
    stamps = [t for t, _name, _f in r.peer.received[start:]]
    assert len(stamps) >= 60
    worst = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
    assert worst <= 50, f"{worst} messages in one second"
    assert r.peer.pacing_violations == 0
    assert "IBKR 100" not in caplog.text


# --- issue 14: the adapter under concurrency, across clients, and after a fill -----------


async def test_requests_sharing_one_ib_async_key_run_together(rig):
    """ib_async keys reqPositions and reqAllOpenOrders by one fixed name: gathered calls
    would share one future and all but one time out. Serialised, all succeed."""
    r = await rig()
    bid = (await r.sim.option_quote(r.ko)).bid
    await r.broker.place_order(sell(r.ko, 1, round(bid + 0.40, 2), "putdesk:rest"))
    await until(lambda: any(isinstance(e, OrderStatusChanged) for e in r.events))
    r.sim.faults.latency_seconds = 0.2  # TWS answers slower than the pacer's spacing
    results = await asyncio.gather(*[r.broker.positions() for _ in range(4)],
                                   *[r.broker.open_orders() for _ in range(4)])
    positions, orders = results[:4], results[4:]
    assert all(p == positions[0] and p for p in positions)
    assert all([o.order_ref for o in batch] == ["putdesk:rest"] for batch in orders)


async def test_open_orders_include_every_clients(rig):
    """A second PutDesk on its own client id sees the first one's working order (IBKR's
    reqOpenOrders would show it only the caller's)."""
    r = await rig()
    other = adapter(r.peer.port, PUTDESK_IBKR_CLIENT_ID=12)
    await other.connect()
    try:
        bid = (await r.sim.option_quote(r.ko)).bid
        await r.broker.place_order(sell(r.ko, 1, round(bid + 0.40, 2), "putdesk:first"))
        assert [o.order_ref for o in await other.open_orders()] == ["putdesk:first"]
    finally:
        await other.disconnect()


async def test_a_321_on_a_new_order_is_a_rejection_with_ibkrs_text(rig):
    """TWS answers an order on a read-only API with 321; ib_async keeps it as a warning
    (ValidationError), which must not read as a working order."""
    r = await rig()
    text = ("Error validating request.-'bN' : cause - The API interface is currently in "
            "Read-Only mode.")
    r.peer.error_on("placeOrder", 321, text)
    await r.broker.place_order(sell(r.ko, 1, 0.5, "putdesk:ro"))
    await until(lambda: any(isinstance(e, OrderStatusChanged) and e.state.status.is_done
                            for e in r.events))
    final = [e.state for e in r.events if isinstance(e, OrderStatusChanged)][-1]
    assert final.status is OrderStatus.INACTIVE and "Read-Only" in final.message
    assert await r.broker.open_orders() == []


async def test_fresh_account_values_include_a_fill(rig):
    """The account summary IBKR pushes refreshes every 3 minutes (the peer, like TWS,
    does not re-push it on a fill): the post-trade check asks for a fresh one."""
    r = await rig()
    before = await r.broker.account_values()
    bid = (await r.sim.option_quote(r.ko)).bid
    await r.broker.place_order(sell(r.ko, 2, bid, "putdesk:fill"))
    await until(lambda: any(isinstance(e, OrderStatusChanged)
                            and e.state.status is OrderStatus.FILLED for e in r.events))
    truth = await r.sim.account_values()
    assert truth.init_margin_req != before.init_margin_req
    cached = await r.broker.account_values()
    assert cached.init_margin_req == before.init_margin_req  # the 3-minute subscription
    fresh = await r.broker.account_values(fresh=True)
    assert fresh.init_margin_req == pytest.approx(truth.init_margin_req)
    assert fresh.excess_liquidity == pytest.approx(truth.excess_liquidity)


async def test_after_1101_data_lost_the_account_subscriptions_are_made_again(rig):
    r = await rig()
    await r.broker.account_values()
    summaries = r.peer.count("reqAccountSummary")
    updates = r.peer.count("reqAccountUpdates")
    r.peer.send_error(-1, 1100, "Connectivity between IB and TWS has been lost.")
    await until(lambda: not r.broker.connected)
    bid = (await r.sim.option_quote(r.ko)).bid
    await r.sim.place_order(sell(r.ko, 1, bid, "elsewhere"))  # the world moves meanwhile
    r.peer.send_error(-1, 1101, "Connectivity between IB and TWS has been restored - "
                      "data lost.")
    await asyncio.sleep(0.2)
    await r.broker.connect()
    await until(lambda: r.peer.count("reqAccountUpdates") == updates + 1)
    values = await r.broker.account_values()
    assert r.peer.count("reqAccountSummary") == summaries + 1
    assert values.init_margin_req == pytest.approx((await r.sim.account_values())
                                                   .init_margin_req)


async def test_a_busy_client_id_moves_to_the_next_free_one_and_back_after_a_crash(rig):
    """One-shot commands take the lowest free id of their range: the same command run
    again after its process died gets the same id, and with it its orders."""
    r = await rig(PUTDESK_IBKR_CLIENT_ID=100)
    second = adapter(r.peer.port, spare_client_ids=5, PUTDESK_IBKR_CLIENT_ID=100)
    await second.connect()
    try:
        assert second.settings.client_id == 101
        bid = (await r.sim.option_quote(r.ko)).bid
        state = await second.place_order(sell(r.ko, 1, round(bid + 0.40, 2), "putdesk:mine"))
    finally:
        await second.disconnect()  # the process dies; its order stays working
    again = adapter(r.peer.port, spare_client_ids=5, PUTDESK_IBKR_CLIENT_ID=100)
    await again.connect()
    try:
        assert again.settings.client_id == 101
        [mine] = [o for o in await again.open_orders() if o.order_ref == "putdesk:mine"]
        await again.cancel_order(mine.order_id)  # its own order: allowed
        await until(lambda: not any(o.request.order_ref == "putdesk:mine"
                                    for o in r.sim._orders.values()
                                    if not o.status.is_done))
        assert mine.order_id == state.order_id
    finally:
        await again.disconnect()
