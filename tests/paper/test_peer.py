"""The TWS peer, driven by a raw ib_async IB() over a real socket.

ib_async swallows a message it cannot decode: it logs the exception and carries on, so a
miscounted layout would pass silently. Every test here therefore runs under a guard that
fails it when ib_async logged a decode error (or a symptom of one), and under the peer's
own record of requests it could not parse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from ib_async import (
    IB,
    Bag,
    ComboLeg,
    Contract,
    Index,
    LimitOrder,
    MarketOrder,
    Option,
    Stock,
    TagValue,
)
from ib_async.client import Client
from ib_async.decoder import Decoder
from ib_async.order import Order

from core.broker.base import OptionContract, OrderRequest
from core.broker.sim import SimBroker
from core.paper import TwsPeer
from core.paper.codec import field_text, split_fields
from core.paper.contracts import Instrument
from core.paper.orders import (
    ComboLegSpec,
    MarginState,
    OrderView,
    open_order,
    parse_place_order,
    what_if_index,
)

AAPL_DEC = date(2026, 12, 18)
AAPL_PUT = OptionContract("AAPL", AAPL_DEC, 215.0, "P")
HELD_200P = OptionContract("AAPL", AAPL_DEC, 200.0, "P")  # the scenario is short 2

async def connect(peer: TwsPeer, client_id: int = 1, **kwargs: Any) -> IB:
    ib = IB()
    await ib.connectAsync("127.0.0.1", peer.port, clientId=client_id,
                          timeout=kwargs.pop("timeout", 4), **kwargs)
    return ib


def errors_of(ib: IB) -> list[tuple[int, int, str]]:
    seen: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, code, text, _contract: seen.append((req_id, code, text))
    return seen


async def until(predicate: Callable[[], object]) -> None:
    async with asyncio.timeout(3):
        while not predicate():
            await asyncio.sleep(0.005)


async def qualified(ib: IB, contract: Contract) -> Contract:
    [result] = await ib.qualifyContractsAsync(contract)
    assert isinstance(result, Contract)
    return result


def ib_option(c: OptionContract) -> Option:
    return Option(c.symbol, f"{c.expiration:%Y%m%d}", c.strike, c.right, "SMART",
                  currency="USD")


# --- handshake and startup sync -------------------------------------------------------------


@pytest.mark.parametrize("peer", [178, 176], indirect=True)
@pytest.mark.parametrize("readonly", [False, True])
async def test_handshake_and_startup_sync_answer_every_request(
        peer: TwsPeer, readonly: bool) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    ib = await connect(peer, readonly=readonly)
    took = loop.time() - started
    try:
        assert ib.isConnected()
        assert ib.client.serverVersion() == peer.server_version
        assert ib.managedAccounts() == ["DU0000001"]
        assert took < 2  # nothing waited out a sync timeout (4 s; the guard checks too)
        for name in ("startApi", "reqPositions", "reqAccountUpdates",
                     "reqAccountUpdatesMulti", "reqExecutions"):
            assert peer.count(name) == 1, name
        sent_orders = peer.count("reqOpenOrders") + peer.count("reqCompletedOrders")
        assert sent_orders == (0 if readonly else 2)
        assert peer.client_ids == [1]
    finally:
        ib.disconnect()


async def test_client_id_zero_binds_manual_orders(peer: TwsPeer) -> None:
    ib = await connect(peer, client_id=0)
    try:
        await peer.wait_for("reqAutoOpenOrders")
    finally:
        ib.disconnect()


async def test_second_connection_with_a_used_client_id_gets_326(peer: TwsPeer, ib: IB) -> None:
    other = IB()
    seen = errors_of(other)
    with pytest.raises(TimeoutError):  # ib_async waits out its timeout, 326 or not
        await other.connectAsync("127.0.0.1", peer.port, clientId=1, timeout=0.5)
    assert any(code == 326 for _r, code, _t in seen)
    assert ib.isConnected()
    assert peer.client_ids == [1]


async def test_current_time_is_the_sim_clock(ib: IB, sim: SimBroker) -> None:
    now = await ib.reqCurrentTimeAsync()
    assert int(now.timestamp()) == int(sim.clock.now().timestamp())


# --- account and positions ------------------------------------------------------------------


async def test_account_summary_and_updates_match_the_sim(ib: IB, sim: SimBroker) -> None:
    v = await sim.account_values()
    expected = {"NetLiquidation": v.net_liquidation, "AvailableFunds": v.available_funds,
                "ExcessLiquidity": v.excess_liquidity, "InitMarginReq": v.init_margin_req,
                "MaintMarginReq": v.maint_margin_req, "EquityWithLoanValue": v.equity_with_loan,
                "TotalCashValue": v.total_cash, "BuyingPower": v.buying_power}
    summary = {row.tag: row for row in await ib.accountSummaryAsync()}
    updates = {row.tag: row for row in ib.accountValues() if not row.modelCode}
    for tag, value in expected.items():
        assert value is not None
        for rows in (summary, updates):
            assert rows[tag].account == "DU0000001"
            assert rows[tag].currency == "USD"
            assert float(rows[tag].value) == pytest.approx(value, abs=0.006)


async def test_positions_match_the_sim(ib: IB, sim: SimBroker) -> None:
    got = {(p.contract.symbol, p.contract.secType, p.contract.lastTradeDateOrContractMonth,
            p.contract.strike, p.contract.right): p for p in ib.positions()}
    expected = await sim.positions()
    assert len(got) == len(expected)
    for p in expected:
        key: tuple[str, str, str, float, str]
        if p.contract is not None:
            key = (p.symbol, "OPT", f"{p.contract.expiration:%Y%m%d}", p.contract.strike,
                   p.contract.right)
            assert got[key].avgCost == pytest.approx(p.avg_cost * 100)  # per contract
            assert got[key].contract.multiplier == "100"
        else:
            key = (p.symbol, "STK", "", 0.0, "")
            assert got[key].avgCost == pytest.approx(p.avg_cost)
        assert got[key].position == p.quantity
        assert got[key].account == "DU0000001"
    portfolio = {item.contract.conId: item for item in ib.portfolio()}
    assert {p.contract.conId for p in ib.positions()} == set(portfolio)


# --- contracts ------------------------------------------------------------------------------


async def test_contract_details_qualify_known_contracts_and_refuse_unknown(
        ib: IB, sim: SimBroker) -> None:
    seen = errors_of(ib)
    results = await ib.qualifyContractsAsync(
        Stock("AAPL", "SMART", "USD"), ib_option(AAPL_PUT), Index("VIX", "CBOE", "USD"),
        ib_option(OptionContract("WMT", date(2027, 1, 15), 92.0, "P")),  # off-grid, held
        Stock("ZZZZ", "SMART", "USD"),
        ib_option(OptionContract("AAPL", AAPL_DEC, 191.5, "P")),  # no such strike
        ib_option(OptionContract("AAPL", date(2026, 12, 17), 190.0, "P")))  # no such expiry
    stock, option, vix, wmt, *unknown = results
    assert unknown == [None, None, None]
    assert [code for _r, code, _t in seen] == [200, 200, 200]
    assert isinstance(stock, Contract) and stock.conId and stock.secType == "STK"
    assert isinstance(vix, Contract) and vix.secType == "IND" and vix.exchange == "CBOE"
    assert isinstance(option, Contract) and option.localSymbol == "AAPL  261218P00215000"
    assert option.multiplier == "100" and option.tradingClass == "AAPL"
    assert isinstance(wmt, Contract) and wmt.conId
    [details] = await ib.reqContractDetailsAsync(Option(conId=option.conId))
    assert details.contract is not None and details.contract.conId == option.conId
    assert details.underConId == stock.conId
    # The conId is stable: the held contract's position carries the same one.
    held = {p.contract.localSymbol: p.contract.conId for p in ib.positions()}
    assert held["WMT   270115P00092000"] == wmt.conId


async def test_sec_def_opt_params_list_the_sim_chain(ib: IB, sim: SimBroker) -> None:
    stock = await qualified(ib, Stock("AAPL", "SMART", "USD"))
    [chain] = await ib.reqSecDefOptParamsAsync("AAPL", "", "STK", stock.conId)
    sim_chain = await sim.option_chain("AAPL")
    assert sim_chain is not None
    assert (chain.exchange, chain.tradingClass, chain.multiplier) == ("SMART", "AAPL", "100")
    assert int(chain.underlyingConId) == stock.conId  # ib_async leaves it a str
    assert chain.expirations == [f"{e:%Y%m%d}" for e in sim_chain.expirations]
    assert chain.strikes == list(sim_chain.strikes)
    assert await ib.reqSecDefOptParamsAsync("ZZZZ", "", "STK", 0) == []


# --- market data ------------------------------------------------------------------------------


async def test_option_snapshot_has_quote_and_model_greeks(ib: IB, sim: SimBroker) -> None:
    option = await qualified(ib, ib_option(AAPL_PUT))
    [ticker] = await ib.reqTickersAsync(option)
    q = await sim.option_quote(AAPL_PUT)
    assert (ticker.bid, ticker.ask) == (q.bid, q.ask)
    assert ticker.marketDataType == 1
    g = ticker.modelGreeks
    assert g is not None
    assert (g.impliedVol, g.delta, g.gamma, g.vega, g.theta, g.undPrice) == pytest.approx(
        (q.iv, q.delta, q.gamma, q.vega, q.theta, q.underlying_price))
    assert g.pvDividend == 0.0


async def test_missing_greeks_arrive_as_the_wire_unset_values(ib: IB, sim: SimBroker) -> None:
    sim.faults.missing_greeks = {"AAPL"}
    option = await qualified(ib, ib_option(AAPL_PUT))
    [ticker] = await ib.reqTickersAsync(option)
    g = ticker.modelGreeks
    assert g is not None
    assert (g.impliedVol, g.delta, g.gamma) == (None, None, None)
    assert (g.vega, g.theta) == (-2.0, -2.0)  # ib_async 2.1.0 keeps these two unset values
    assert g.undPrice == 231.4


async def test_stock_stream_with_tick_106_and_vix(ib: IB, sim: SimBroker, peer: TwsPeer) -> None:
    stock = await qualified(ib, Stock("AAPL", "SMART", "USD"))
    ticker = ib.reqMktData(stock, "104,106")
    await until(lambda: ticker.impliedVolatility == ticker.impliedVolatility  # not NaN
                and ticker.histVolatility == ticker.histVolatility)
    assert ticker.impliedVolatility == await sim.underlying_iv("AAPL")
    assert ticker.last == 231.4 and ticker.close == 231.4
    assert ticker.bid < 231.4 < ticker.ask
    sim.set_price("AAPL", 240.0)
    await peer.push_quotes()
    await until(lambda: ticker.last == 240.0)
    ib.cancelMktData(stock)
    await peer.wait_for("cancelMktData")
    vix = await qualified(ib, Index("VIX", "CBOE", "USD"))
    [vt] = await ib.reqTickersAsync(vix)
    assert vt.last == 18.5 and vt.close == 18.5


async def test_delayed_mode_uses_delayed_ticks(ib: IB, sim: SimBroker) -> None:
    ib.reqMarketDataType(3)
    stock, option = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"),
                                                   ib_option(AAPL_PUT))
    assert isinstance(stock, Contract) and isinstance(option, Contract)
    st, ot = await ib.reqTickersAsync(stock, option)
    assert st.marketDataType == 3 and ot.marketDataType == 3
    assert st.last == 231.4 and st.bid == pytest.approx(231.39)
    q = await sim.option_quote(AAPL_PUT)
    assert (ot.bid, ot.ask) == (q.bid, q.ask)
    assert ot.modelGreeks is not None and ot.modelGreeks.delta == pytest.approx(q.delta)
    assert {t.tickType for t in st.ticks} >= {66, 67, 68}


async def test_historical_iv_bars_come_from_the_sim(ib: IB, sim: SimBroker) -> None:
    stock = await qualified(ib, Stock("AAPL", "SMART", "USD"))
    bars = await ib.reqHistoricalDataAsync(stock, "", "1 Y", "1 day",
                                           "OPTION_IMPLIED_VOLATILITY", True)
    points = await sim.iv_history("AAPL", 365)
    assert len(bars) == len(points) > 200
    assert [b.date for b in bars] == [p.day for p in points]
    assert [b.close for b in bars] == [p.iv for p in points]


async def test_empty_iv_history_is_error_162(ib: IB, sim: SimBroker) -> None:
    sim.faults.missing_iv_history = {"AAPL"}
    seen = errors_of(ib)
    stock = await qualified(ib, Stock("AAPL", "SMART", "USD"))
    bars = await ib.reqHistoricalDataAsync(stock, "", "1 Y", "1 day",
                                           "OPTION_IMPLIED_VOLATILITY", True)
    assert list(bars) == []
    assert [code for _r, code, _t in seen] == [162]
    assert "HMDS query returned no data" in seen[0][2]


# --- what-if ------------------------------------------------------------------------------------


def _request(action: str, contract: OptionContract, price: float) -> OrderRequest:
    return OrderRequest(action=action, quantity=1, order_ref="", contract=contract,  # type: ignore[arg-type]
                        limit_price=price)


@pytest.mark.parametrize("peer", [178, 176], indirect=True)
@pytest.mark.parametrize("sentinel_first", [False, True])
async def test_what_if_equals_the_sim(ib: IB, sim: SimBroker, peer: TwsPeer,
                                      sentinel_first: bool) -> None:
    peer.whatif_sentinel_first = sentinel_first
    option = await qualified(ib, ib_option(AAPL_PUT))
    state = await asyncio.wait_for(
        ib.whatIfOrderAsync(option, LimitOrder("SELL", 1, 0.75)), 2)
    m = await sim.what_if(_request("SELL", AAPL_PUT, 0.75))
    assert m.init_margin_change is not None and m.init_margin_before is not None
    assert float(state.initMarginBefore) == pytest.approx(m.init_margin_before, abs=0.006)
    assert float(state.initMarginChange) == pytest.approx(m.init_margin_change, abs=0.011)
    assert float(state.initMarginAfter) == pytest.approx(m.init_margin_after, abs=0.006)
    assert float(state.maintMarginAfter) == pytest.approx(m.maint_margin_after, abs=0.006)
    assert float(state.equityWithLoanAfter) == pytest.approx(m.equity_with_loan_after,
                                                             abs=0.006)
    assert state.commission == m.commission
    assert state.status == "PreSubmitted"
    assert await sim.open_orders() == []  # a what-if places nothing


async def test_what_if_error_is_321_and_timeout_never_answers(ib: IB, sim: SimBroker) -> None:
    seen = errors_of(ib)
    option = await qualified(ib, ib_option(AAPL_PUT))
    sim.faults.whatif_error = "margin engine down"
    # ib_async counts 321 as a warning, so the what-if future never resolves by itself.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ib.whatIfOrderAsync(option, LimitOrder("SELL", 1, 0.75)), 0.3)
    assert [(code, text) for _r, code, text in seen] == [(321, "margin engine down")]
    sim.faults.whatif_error = None
    sim.faults.whatif_timeout = True
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ib.whatIfOrderAsync(option, LimitOrder("SELL", 1, 0.75)), 0.3)
    assert await asyncio.wait_for(ib.reqCurrentTimeAsync(), 1)  # the reader is not blocked


# --- orders -------------------------------------------------------------------------------------


@pytest.mark.parametrize("peer", [178, 176], indirect=True)
async def test_marketable_sell_put_fills_with_commission_and_order_ref(
        ib: IB, sim: SimBroker, peer: TwsPeer) -> None:
    option = await qualified(ib, ib_option(AAPL_PUT))
    q = await sim.option_quote(AAPL_PUT)
    assert q.bid
    trade = ib.placeOrder(option, LimitOrder("SELL", 1, q.bid, orderRef="pd-open-1"))
    await until(trade.isDone)
    assert trade.orderStatus.status == "Filled"
    assert trade.orderStatus.filled == 1 and trade.orderStatus.avgFillPrice == q.bid
    assert trade.order.orderRef == "pd-open-1" and trade.order.permId
    await until(lambda: trade.fills and trade.fills[0].commissionReport.execId)
    [fill] = trade.fills
    [sim_fill] = await sim.fills()
    assert fill.execution.orderRef == "pd-open-1"
    assert fill.execution.side == "SLD" and fill.execution.price == q.bid
    assert fill.execution.permId == trade.order.permId
    assert fill.commissionReport.commission == sim_fill.commission
    assert peer.sim_order_id(1, trade.order.orderId) == sim_fill.order_id
    # The position stream follows the fill.
    await until(lambda: any(p.contract.conId == option.conId for p in ib.positions()))
    [pos] = [p for p in ib.positions() if p.contract.conId == option.conId]
    # IBKR's average cost includes commission: a sale's proceeds net of it.
    assert pos.position == -1
    assert pos.avgCost == pytest.approx(q.bid * 100 - sim_fill.commission)
    # And a later reqExecutions replays it.
    [replayed] = await ib.reqExecutionsAsync()
    assert replayed.execution.execId == fill.execution.execId
    assert replayed.execution.orderId == trade.order.orderId


async def test_resting_order_modify_then_cancel(ib: IB, sim: SimBroker, peer: TwsPeer) -> None:
    seen = errors_of(ib)
    option = await qualified(ib, ib_option(AAPL_PUT))
    q = await sim.option_quote(AAPL_PUT)
    assert q.ask
    order = LimitOrder("SELL", 2, round(q.ask + 1, 2), orderRef="pd-rest")
    trade = ib.placeOrder(option, order)
    await until(lambda: trade.orderStatus.status == "Submitted")
    [working] = await sim.open_orders()
    assert working.request.limit_price == order.lmtPrice
    order.lmtPrice = round(q.ask + 0.5, 2)
    ib.placeOrder(option, order)  # same orderId: a modification
    await until(lambda: trade.log[-1].message == "Modified")
    assert (await sim.open_orders())[0].request.limit_price == order.lmtPrice
    assert peer.count("placeOrder") == 2 and len(await sim.open_orders()) == 1
    ib.cancelOrder(order)
    await until(lambda: trade.orderStatus.status == "Cancelled")
    await until(lambda: any(code == 202 for _r, code, _t in seen))
    assert await sim.open_orders() == []


async def test_rejected_order_is_201_and_inactive(ib: IB, sim: SimBroker) -> None:
    seen = errors_of(ib)
    sim.faults.reject_orders = "insufficient margin"
    option = await qualified(ib, ib_option(AAPL_PUT))
    trade = ib.placeOrder(option, LimitOrder("SELL", 1, 5.0, orderRef="pd-rej"))
    await until(lambda: trade.orderStatus.status == "Inactive")
    [(req_id, code, text)] = seen
    assert (req_id, code) == (trade.order.orderId, 201)
    assert "insufficient margin" in text


async def test_bag_order_legs_follow_tws_sign_rules(ib: IB, sim: SimBroker) -> None:
    new = OptionContract("AAPL", date(2027, 1, 15), 190.0, "P")
    old_c, new_c = await ib.qualifyContractsAsync(ib_option(HELD_200P), ib_option(new))
    assert isinstance(old_c, Contract) and isinstance(new_c, Contract)

    def bag(first: str, second: str) -> Bag:
        return Bag(symbol="AAPL", exchange="SMART", currency="USD", comboLegs=[
            ComboLeg(conId=old_c.conId, ratio=1, action=first, exchange="SMART"),
            ComboLeg(conId=new_c.conId, ratio=1, action=second, exchange="SMART")])

    # The same roll both ways: BUY the combo as written, or SELL it with the legs
    # reversed (TWS flips every leg of a SELL combo). Neither limit is marketable.
    t1 = ib.placeOrder(bag("BUY", "SELL"), LimitOrder("BUY", 1, -50.0, orderRef="roll-1"))
    t2 = ib.placeOrder(bag("SELL", "BUY"), LimitOrder("SELL", 1, 50.0, orderRef="roll-2"))
    await until(lambda: t1.orderStatus.status == t2.orderStatus.status == "Submitted")
    for state in await sim.open_orders():
        assert [(leg.contract, leg.action) for leg in state.request.legs] == [
            (HELD_200P, "BUY"), (new, "SELL")]
    assert len(t1.contract.comboLegs) == 2
    # A marketable roll fills both legs.
    t3 = ib.placeOrder(bag("BUY", "SELL"), LimitOrder("BUY", 1, 20.0, orderRef="roll-3"))
    await until(t3.isDone)
    assert t3.orderStatus.status == "Filled"
    # As TWS reports a combo fill: each leg's execution, then the combo's own (BAG)
    # execution at the net price, from which IBKR clients count the combo's fills.
    await until(lambda: len(t3.fills) == 3)
    legs = [f for f in t3.fills if f.contract.secType == "OPT"]
    [combo] = [f for f in t3.fills if f.contract.secType == "BAG"]
    assert {f.execution.side for f in legs} == {"BOT", "SLD"}
    assert combo.execution.shares == 1 and combo.execution.side == "BOT"
    assert combo.execution.price == pytest.approx(t3.orderStatus.avgFillPrice)
    assert combo.execution.orderRef == "roll-3" and t3.filled() == 1
    held = {p.contract: p.quantity for p in await sim.positions() if p.contract}
    assert held[HELD_200P] == -1 and held[new] == -1


async def test_stock_order_sells_shares(ib: IB, sim: SimBroker) -> None:
    stock = await qualified(ib, Stock("INTC", "SMART", "USD"))
    trade = ib.placeOrder(stock, MarketOrder("SELL", 100, orderRef="pd-stk"))
    await until(trade.isDone)
    assert trade.orderStatus.status == "Filled"
    [intc] = [p for p in await sim.positions() if p.symbol == "INTC"]
    assert intc.quantity == 100


# --- connection faults ----------------------------------------------------------------------------


async def test_drop_then_reconnect_sees_the_same_open_order(
        peer: TwsPeer, sim: SimBroker) -> None:
    ib = await connect(peer)
    option = await qualified(ib, ib_option(AAPL_PUT))
    trade = ib.placeOrder(option, LimitOrder("SELL", 1, 9.0, orderRef="pd-keep"))
    await until(lambda: trade.orderStatus.status == "Submitted")
    order_id, perm_id = trade.order.orderId, trade.order.permId
    gone = asyncio.Event()
    ib.disconnectedEvent += gone.set
    peer.drop()
    await asyncio.wait_for(gone.wait(), 2)
    assert not ib.isConnected()
    assert len(await sim.open_orders()) == 1  # TWS keeps working it
    again = await connect(peer)
    try:
        [back] = again.openTrades()
        assert (back.order.orderId, back.order.permId, back.order.orderRef) == (
            order_id, perm_id, "pd-keep")
        assert back.orderStatus.status == "Submitted"
        assert back.order.lmtPrice == 9.0 and back.contract.conId == option.conId
        assert again.client.getReqId() > order_id  # no duplicate order id next time
    finally:
        again.disconnect()


@pytest.mark.parametrize("cue", ["placeOrder", "placeOrder:before"])
async def test_drop_on_place_order(peer: TwsPeer, sim: SimBroker, cue: str) -> None:
    ib = await connect(peer)
    option = await qualified(ib, ib_option(AAPL_PUT))
    gone = asyncio.Event()
    ib.disconnectedEvent += gone.set
    peer.drop_on(cue)
    # A what-if first does not spend the cue: it answers to 'whatIf'.
    state = await asyncio.wait_for(ib.whatIfOrderAsync(option, LimitOrder("SELL", 1, 9.0)), 2)
    assert state.status == "PreSubmitted" and peer.count("whatIf") == 1
    trade = ib.placeOrder(option, LimitOrder("SELL", 1, 9.0, orderRef="pd-lost"))
    await asyncio.wait_for(gone.wait(), 2)
    assert trade.orderStatus.status == "PendingSubmit"  # never acknowledged
    accepted = cue == "placeOrder"
    assert len(await sim.open_orders()) == (1 if accepted else 0)
    again = await connect(peer)
    try:
        refs = [t.order.orderRef for t in again.openTrades()]
        assert refs == (["pd-lost"] if accepted else [])
    finally:
        again.disconnect()


async def test_sim_disconnect_after_accept_drops_the_socket(
        peer: TwsPeer, sim: SimBroker) -> None:
    ib = await connect(peer)
    seen = errors_of(ib)
    option = await qualified(ib, ib_option(AAPL_PUT))
    gone = asyncio.Event()
    ib.disconnectedEvent += gone.set
    sim.faults.disconnect_after_accept = True
    ib.placeOrder(option, LimitOrder("SELL", 1, 9.0, orderRef="pd-half"))
    await asyncio.wait_for(gone.wait(), 2)
    assert seen == [] and sim.connected
    again = await connect(peer)
    try:
        assert [t.order.orderRef for t in again.openTrades()] == ["pd-half"]
    finally:
        again.disconnect()


async def test_error_cues(ib: IB, peer: TwsPeer) -> None:
    seen = errors_of(ib)
    peer.error_on("reqContractDetails", 200, "No security definition (cue)")
    assert await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD")) == [None]
    assert await qualified(ib, Stock("AAPL", "SMART", "USD"))  # only the next one
    peer.send_error(-1, 1100, "Connectivity between IB and Trader Workstation has been lost.")
    await until(lambda: any(code == 1100 for _r, code, _t in seen))
    # A what-if refused with a non-warning code resolves ib_async's future with [] (the
    # empty result list), not with an OrderState.
    peer.error_on("whatIf", 201, "Order rejected - reason:cue")
    option = await qualified(ib, ib_option(AAPL_PUT))
    result: object = await asyncio.wait_for(
        ib.whatIfOrderAsync(option, LimitOrder("SELL", 1, 1.0)), 2)
    assert result == []
    assert [code for _r, code, _t in seen] == [200, 1100, 201]


async def test_pacing_violations_are_counted_and_answered_with_100(
        ib: IB, peer: TwsPeer) -> None:
    seen = errors_of(ib)
    ib.client.MaxRequests = 0  # bypass ib_async's own throttle (45/s)
    for _ in range(60):
        ib.client.reqCurrentTime()
    await peer.wait_for("reqCurrentTime", 60)
    # The startup sync shares the window, so at least the last 10 are over the limit.
    await until(lambda: sum(1 for _r, code, _t in seen if code == 100)
                == peer.pacing_violations >= 10)


# --- layouts without a socket --------------------------------------------------------------------


def _client_frame(version: int, contract: Contract, order: Order, order_id: int = 7
                  ) -> list[str]:
    """What ib_async's Client.placeOrder puts on the wire at `version`."""
    client = Client(IB().wrapper)
    client.connState = Client.CONNECTED
    client._serverVersion = version
    client.MaxRequests = 0
    sent: list[bytes] = []
    client.conn.sendMsg = sent.append  # type: ignore[method-assign]
    client.placeOrder(order_id, contract, order)
    [frame] = sent
    return split_fields(frame[4:])


@pytest.mark.parametrize("version", [157, 166, 170, 176, 177, 178])
async def test_place_order_parser_consumes_the_client_layout(version: int) -> None:
    opt = Option("AAPL", "20261218", 190.0, "P", "SMART", conId=123)
    plain = LimitOrder("SELL", 2, 1.25, orderRef="ref-1", tif="GTC", account="DU0000001")
    fields = _client_frame(version, opt, plain)
    placed = parse_place_order(fields, version)
    assert (placed.order_id, placed.action, placed.quantity, placed.lmt_price) == (
        7, "SELL", 2.0, 1.25)
    assert (placed.order_ref, placed.tif, placed.account, placed.what_if) == (
        "ref-1", "GTC", "DU0000001", False)
    assert placed.contract.con_id == 123 and placed.contract.strike == 190.0
    what_if = LimitOrder("SELL", 1, 1.25, whatIf=True)
    fields = _client_frame(version, opt, what_if)
    assert parse_place_order(fields, version).what_if
    if version >= 176:
        assert fields[what_if_index(version)] == "1"
    bag = Bag(symbol="AAPL", exchange="SMART", currency="USD", comboLegs=[
        ComboLeg(conId=1, ratio=1, action="BUY", exchange="SMART"),
        ComboLeg(conId=2, ratio=2, action="SELL", exchange="SMART")])
    exotic = MarketOrder("BUY", 3, hedgeType="D", hedgeParam="0.5", algoStrategy="Adaptive",
                         algoParams=[TagValue("adaptivePriority", "Normal")],
                         smartComboRoutingParams=[TagValue("NonGuaranteed", "1")],
                         scalePriceIncrement=0.1, deltaNeutralOrderType="LMT")
    placed = parse_place_order(_client_frame(version, bag, exotic), version)
    assert [(leg.con_id, leg.ratio, leg.action) for leg in placed.combo_legs] == [
        (1, 1, "BUY"), (2, 2, "SELL")]
    assert placed.order_type == "MKT" and placed.algo_strategy == "Adaptive"


@pytest.mark.parametrize("version", [157, 159, 162, 170, 176, 177, 178])
def test_open_order_layout_decodes_in_ib_async(version: int) -> None:
    decoded: list[tuple[Any, ...]] = []

    class Recorder:
        def openOrder(self, *args: Any) -> None:
            decoded.append(args)

    inst = Instrument("OPT", "AAPL", 555, AAPL_PUT)
    legs = [ComboLegSpec(1, 1, "BUY", "SMART"), ComboLegSpec(2, 1, "SELL", "SMART")]
    margin = MarginState(100.0, 90.0, 1000.0, 150.0, 120.0, 990.0, 0.65)
    for view in (
            OrderView(9, 3, 901, inst.fields(), "SELL", 1.0, "LMT", 0.8, None, "DAY",
                      "DU1", "ref-9", what_if=True, status="PreSubmitted", margin=margin),
            OrderView(10, 3, 902, inst.fields(), "BUY", 2.0, "MKT", None, None, "GTC",
                      "DU1", "ref-10", combo_legs=legs, combo_prices=[None, 1.5])):
        fields = [field_text(f) for f in open_order(version, view)]
        Decoder(Recorder(), version).openOrder(fields)  # type: ignore[arg-type]
    (oid, c, o, st), (_oid2, c2, o2, _st2) = decoded
    assert (oid, o.orderId, o.clientId, o.permId, o.orderRef) == (9, 9, 3, 901, "ref-9")
    assert (c.conId, c.strike, c.right, c.localSymbol) == (555, 215.0, "P",
                                                           "AAPL  261218P00215000")
    assert (o.lmtPrice, o.whatIf, st.status, st.commission) == (0.8, True, "PreSubmitted",
                                                               0.65)
    assert (st.initMarginBefore, st.initMarginChange, st.initMarginAfter) == (
        "100.00", "50.00", "150.00")
    assert [leg.conId for leg in c2.comboLegs] == [1, 2]
    assert [leg.price for leg in o2.orderComboLegs][1] == 1.5
    assert o2.tif == "GTC" and not o2.whatIf
