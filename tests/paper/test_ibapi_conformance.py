"""The paper gateway driven by IBKR's own Python client (`ibapi-stable`), which nobody
here wrote: a whole session, and every message it decodes must decode cleanly.

ibapi reads on a thread of its own and hands messages to `run()`, on another; a decode
error either reaches `error()` as 505/507/508, is logged by ibapi, or raises out of
`run()` (the thread dies). Each of those fails the test.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from ibapi.account_summary_tags import AccountSummaryTags  # ibapi-stable, a dev dependency
from ibapi.client import EClient
from ibapi.contract import ComboLeg, Contract
from ibapi.execution import ExecutionFilter
from ibapi.order import Order
from ibapi.order_cancel import OrderCancel
from ibapi.wrapper import EWrapper

from core.broker.base import OptionContract
from core.broker.sim import SimBroker
from core.paper import TwsPeer
from core.paper.accounts import ACCOUNT_TAGS

DECODE_ERRORS = {505, 507, 508}  # unknown message id, bad length, bad message
UNSET_DOUBLE = 1.7976931348623157e308
KO_DEC = "20261218"
WAIT_S = 10.0


class App(EWrapper, EClient):
    """Records every callback as (name, args); tests wait on what they need."""

    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, self)
        self.seen: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self.cv = threading.Condition()
        self.crash: BaseException | None = None

    def _rec(self, name: str, *args: Any) -> None:
        with self.cv:
            self.seen[name].append(args)
            self.cv.notify_all()

    def wait(self, pred: Callable[[], object], what: str) -> None:
        with self.cv:
            if not self.cv.wait_for(lambda: bool(pred()) or self.crash is not None, WAIT_S):
                raise AssertionError(f"ibapi: no {what} within {WAIT_S} s; "
                                     f"errors: {self.seen['error'][-5:]}")
        if self.crash is not None:
            raise AssertionError(f"ibapi's message thread died: {self.crash!r}")

    def count(self, name: str) -> int:
        with self.cv:
            return len(self.seen[name])

    def run_safely(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # the test fails on it (wait() and teardown)
            with self.cv:
                self.crash = exc
                self.cv.notify_all()

    # --- the wrapper: every callback this session uses -------------------------------

    def error(self, reqId: int, errorTime: int, errorCode: int, errorString: str,
              advancedOrderRejectJson: str = "") -> None:
        self._rec("error", reqId, errorCode, errorString)

    def nextValidId(self, orderId: int) -> None:
        self._rec("nextValidId", orderId)

    def managedAccounts(self, accountsList: str) -> None:
        self._rec("managedAccounts", accountsList)

    def currentTime(self, time: int) -> None:
        self._rec("currentTime", time)

    def accountSummary(self, reqId: int, account: str, tag: str, value: str,
                       currency: str) -> None:
        self._rec("accountSummary", reqId, account, tag, value, currency)

    def accountSummaryEnd(self, reqId: int) -> None:
        self._rec("accountSummaryEnd", reqId)

    def updateAccountValue(self, key: str, val: str, currency: str, accountName: str) -> None:
        self._rec("updateAccountValue", key, val, currency, accountName)

    def updatePortfolio(self, contract: Contract, position: Decimal, marketPrice: float,
                        marketValue: float, averageCost: float, unrealizedPNL: float,
                        realizedPNL: float, accountName: str) -> None:
        self._rec("updatePortfolio", contract, position, marketPrice, averageCost)

    def updateAccountTime(self, timeStamp: str) -> None:
        self._rec("updateAccountTime", timeStamp)

    def accountDownloadEnd(self, accountName: str) -> None:
        self._rec("accountDownloadEnd", accountName)

    def position(self, account: str, contract: Contract, position: Decimal,
                 avgCost: float) -> None:
        self._rec("position", contract, position, avgCost)

    def positionEnd(self) -> None:
        self._rec("positionEnd")

    def contractDetails(self, reqId: int, contractDetails: Any) -> None:
        self._rec("contractDetails", reqId, contractDetails)

    def contractDetailsEnd(self, reqId: int) -> None:
        self._rec("contractDetailsEnd", reqId)

    def securityDefinitionOptionParameter(self, reqId: int, exchange: str,
                                          underlyingConId: int, tradingClass: str,
                                          multiplier: str, expirations: Any,
                                          strikes: Any) -> None:
        self._rec("secDef", reqId, underlyingConId, multiplier, set(expirations), set(strikes))

    def securityDefinitionOptionParameterEnd(self, reqId: int) -> None:
        self._rec("secDefEnd", reqId)

    def marketDataType(self, reqId: int, marketDataType: int) -> None:
        self._rec("marketDataType", reqId, marketDataType)

    def tickPrice(self, reqId: int, tickType: int, price: float, attrib: Any) -> None:
        self._rec("tickPrice", reqId, tickType, price)

    def tickSize(self, reqId: int, tickType: int, size: Decimal) -> None:
        self._rec("tickSize", reqId, tickType, size)

    def tickGeneric(self, reqId: int, tickType: int, value: float) -> None:
        self._rec("tickGeneric", reqId, tickType, value)

    def tickOptionComputation(self, reqId: int, tickType: int, tickAttrib: int,
                              impliedVol: float, delta: float, optPrice: float,
                              pvDividend: float, gamma: float, vega: float, theta: float,
                              undPrice: float) -> None:
        self._rec("tickOptionComputation", reqId, tickType, impliedVol, delta, optPrice,
                  gamma, vega, theta, undPrice)

    def tickSnapshotEnd(self, reqId: int) -> None:
        self._rec("tickSnapshotEnd", reqId)

    def historicalData(self, reqId: int, bar: Any) -> None:
        self._rec("historicalData", reqId, bar)

    def historicalDataEnd(self, reqId: int, start: str, end: str) -> None:
        self._rec("historicalDataEnd", reqId, start, end)

    def openOrder(self, orderId: int, contract: Contract, order: Order,
                  orderState: Any) -> None:
        self._rec("openOrder", orderId, contract, order, orderState)

    def openOrderEnd(self) -> None:
        self._rec("openOrderEnd")

    def orderStatus(self, orderId: int, status: str, filled: Decimal, remaining: Decimal,
                    avgFillPrice: float, permId: int, parentId: int, lastFillPrice: float,
                    clientId: int, whyHeld: str, mktCapPrice: float) -> None:
        self._rec("orderStatus", orderId, status, filled, remaining, avgFillPrice)

    def execDetails(self, reqId: int, contract: Contract, execution: Any) -> None:
        self._rec("execDetails", reqId, contract, execution)

    def execDetailsEnd(self, reqId: int) -> None:
        self._rec("execDetailsEnd", reqId)

    def commissionAndFeesReport(self, commissionAndFeesReport: Any) -> None:
        self._rec("commission", commissionAndFeesReport)

    def commissionReport(self, commissionReport: Any) -> None:  # older ibapi names
        self._rec("commission", commissionReport)


class _IbapiLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("ibapi"):
            self.records.append(record)


async def connected(peer: TwsPeer, app: App | None = None) -> tuple[App, threading.Thread]:
    app = app or App()
    await asyncio.to_thread(app.connect, "127.0.0.1", peer.port, 7)
    runner = threading.Thread(target=app.run_safely, daemon=True)
    runner.start()
    await asyncio.to_thread(app.wait, lambda: app.count("nextValidId"), "nextValidId")
    return app, runner


async def hang_up(peer: TwsPeer, runner: threading.Thread) -> None:
    """The gateway hangs up, and ibapi's own threads see the end: its reader stops, and
    run() decodes what is still queued, then disconnects on its own thread. An
    app.disconnect() from the test's thread resets the session (its server version to
    None) under run() while answers are still queued (streaming ticks, account updates),
    and run() dies on the next one: a harness race, seen under load."""
    peer.drop()
    await asyncio.to_thread(runner.join, WAIT_S)
    assert not runner.is_alive(), "ibapi's message thread did not end after the hang-up"


@pytest.fixture
async def session(peer: TwsPeer) -> AsyncIterator[App]:
    log = _IbapiLog()
    logging.getLogger().addHandler(log)
    app, runner = await connected(peer)
    try:
        yield app
    finally:
        try:
            await hang_up(peer, runner)
        finally:
            logging.getLogger().removeHandler(log)
    decode = [e for e in app.seen["error"] if e[1] in DECODE_ERRORS]
    assert not decode, f"ibapi could not decode: {decode}"
    assert app.crash is None, f"ibapi's message thread died: {app.crash!r}"
    assert not log.records, [r.getMessage()[:300] for r in log.records]
    assert peer.failures == []


def option(strike: float, symbol: str = "KO", expiry: str = KO_DEC) -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "OPT", "SMART", "USD"
    c.lastTradeDateOrContractMonth, c.strike, c.right, c.multiplier = expiry, strike, "P", "100"
    return c


def stock(symbol: str) -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", "SMART", "USD"
    return c


def limit(action: str, qty: int, price: float, ref: str, what_if: bool = False) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.lmtPrice = action, Decimal(qty), "LMT", price
    o.tif, o.orderRef, o.whatIf = "DAY", ref, what_if
    return o


async def call(app: App, fn: Callable[..., object], *args: Any) -> None:
    await asyncio.to_thread(fn, *args)


async def until(app: App, pred: Callable[[], object], what: str) -> None:
    await asyncio.to_thread(app.wait, pred, what)


def statuses(app: App, order_id: int) -> list[str]:
    with app.cv:
        return [s for oid, s, *_ in app.seen["orderStatus"] if oid == order_id]


async def test_a_whole_session_with_ibkrs_own_client(
        session: App, peer: TwsPeer, sim: SimBroker) -> None:
    app = session
    # Handshake: the highest version both speak.
    assert app.serverVersion() == peer.server_version == 178
    assert app.seen["managedAccounts"] == [("DU0000001",)]
    await call(app, app.reqCurrentTime)
    await until(app, lambda: app.count("currentTime"), "currentTime")

    # Account summary (IBKR's own tag list) and account updates.
    await call(app, app.reqAccountSummary, 1, "All", AccountSummaryTags.AllTags)
    await until(app, lambda: app.count("accountSummaryEnd"), "accountSummaryEnd")
    tags = {t for _r, _a, t, _v, _c in app.seen["accountSummary"]}
    assert tags <= set(ACCOUNT_TAGS) and "FullMaintMarginReq" in tags
    await call(app, app.reqAccountUpdates, True, "DU0000001")
    await until(app, lambda: app.count("accountDownloadEnd"), "accountDownloadEnd")
    keys = {k for k, *_ in app.seen["updateAccountValue"]}
    assert {"NetLiquidation", "ExcessLiquidity", "FullMaintMarginReq"} <= keys
    assert app.count("updatePortfolio") == len(await sim.positions())

    # Positions.
    await call(app, app.reqPositions)
    await until(app, lambda: app.count("positionEnd"), "positionEnd")
    assert app.count("position") == len(await sim.positions())

    # Contract details and the option chain.
    await call(app, app.reqContractDetails, 2, stock("KO"))
    await until(app, lambda: app.count("contractDetailsEnd"), "contractDetailsEnd")
    ko_con_id = app.seen["contractDetails"][-1][1].contract.conId
    await call(app, app.reqSecDefOptParams, 3, "KO", "", "STK", ko_con_id)
    await until(app, lambda: app.count("secDefEnd"), "secDefEnd")
    [(_r, und, mult, expirations, strikes)] = app.seen["secDef"]
    assert und == ko_con_id and mult == "100" and KO_DEC in expirations and 67.0 in strikes
    await call(app, app.reqContractDetails, 4, option(67.0))
    await until(app, lambda: app.count("contractDetailsEnd") == 2, "option details")
    put_con_id = app.seen["contractDetails"][-1][1].contract.conId

    # Market data: an option's model greeks, a stock's implied vol (tick 106 -> 24).
    await call(app, app.reqMktData, 5, option(67.0), "", False, False, [])
    await until(app, lambda: any(r == 5 and t == 13 for r, t, *_ in
                                 app.seen["tickOptionComputation"]), "model greeks")
    [greeks] = [g for g in app.seen["tickOptionComputation"] if g[0] == 5]
    assert -1 < greeks[3] < 0 and greeks[2] > 0  # delta of a put, an implied vol
    await call(app, app.cancelMktData, 5)
    await call(app, app.reqMktData, 6, stock("KO"), "106", False, False, [])
    await until(app, lambda: any(r == 6 and t == 24 for r, t, _v in app.seen["tickGeneric"]),
                "tick 24 (implied volatility)")

    # Implied-volatility history.
    await call(app, app.reqHistoricalData, 7, stock("KO"), "", "1 M", "1 day",
               "OPTION_IMPLIED_VOLATILITY", 1, 1, False, [])
    await until(app, lambda: app.count("historicalDataEnd"), "historicalDataEnd")
    assert app.count("historicalData") >= 15

    # What-if with every margin field.
    oid = app.seen["nextValidId"][-1][0]
    await call(app, app.placeOrder, oid, option(67.0), limit("SELL", 1, 0.5, "wi", True))
    await until(app, lambda: any(o == oid for o, *_ in app.seen["openOrder"]), "what-if")
    state = next(s for o, _c, _ord, s in app.seen["openOrder"] if o == oid)
    for name in ("initMarginBefore", "maintMarginBefore", "equityWithLoanBefore",
                 "initMarginChange", "maintMarginChange", "equityWithLoanChange",
                 "initMarginAfter", "maintMarginAfter", "equityWithLoanAfter"):
        value = float(getattr(state, name))
        assert value != UNSET_DOUBLE, name
    fee = getattr(state, "commissionAndFees", getattr(state, "commission", None))
    assert float(state.maintMarginChange) > 0 and fee and fee > 0

    # A put sale: rests, is modified, cancelled (through PendingCancel); then one fills.
    oid += 1
    await call(app, app.placeOrder, oid, option(67.0), limit("SELL", 1, 50.0, "rest"))
    await until(app, lambda: "Submitted" in statuses(app, oid), "Submitted")
    await call(app, app.placeOrder, oid, option(67.0), limit("SELL", 1, 45.0, "rest"))
    await until(app, lambda: any(o == oid and ord_.lmtPrice == 45.0
                                 for o, _c, ord_, _s in app.seen["openOrder"]), "modified")
    await call(app, app.reqOpenOrders)
    await until(app, lambda: app.count("openOrderEnd"), "openOrderEnd")
    await call(app, app.cancelOrder, oid, OrderCancel())
    await until(app, lambda: "Cancelled" in statuses(app, oid), "Cancelled")
    got = statuses(app, oid)
    assert got.index("PendingCancel") < got.index("Cancelled")
    await until(app, lambda: any(r == oid and code == 202 for r, code, _t in app.seen["error"]),
                "error 202 (order cancelled)")

    bid = (await sim.option_quote(OptionContract.parse_key(f"KO {KO_DEC} 67 P"))).bid
    assert bid
    oid += 1
    await call(app, app.placeOrder, oid, option(67.0), limit("SELL", 1, bid, "sold"))
    await until(app, lambda: "Filled" in statuses(app, oid), "Filled")
    await until(app, lambda: app.count("commission") >= 1, "commission report")
    [(_req, contract, execution)] = [e for e in app.seen["execDetails"]
                                     if e[2].orderId == oid]
    assert contract.conId == put_con_id and execution.side == "SLD"
    assert execution.orderRef == "sold" and execution.shares == Decimal(1)
    report = app.seen["commission"][-1][0]
    fee = getattr(report, "commissionAndFees", getattr(report, "commission", 0))
    assert report.execId == execution.execId and fee > 0

    # Open orders of every client, and the executions replayed.
    await call(app, app.reqAllOpenOrders)
    await until(app, lambda: app.count("openOrderEnd") == 2, "second openOrderEnd")
    await call(app, app.reqExecutions, 8, ExecutionFilter())
    await until(app, lambda: app.count("execDetailsEnd"), "execDetailsEnd")
    assert any(r == 8 for r, _c, _e in app.seen["execDetails"])

    # A combo (BAG): buy the sold put back, sell a lower one; legs and combo executions.
    await call(app, app.reqContractDetails, 9, option(66.0))
    await until(app, lambda: app.count("contractDetailsEnd") == 3, "66 put details")
    low_con_id = app.seen["contractDetails"][-1][1].contract.conId
    bag = Contract()
    bag.symbol, bag.secType, bag.exchange, bag.currency = "KO", "BAG", "SMART", "USD"
    bag.comboLegs = []
    for con_id, action in ((put_con_id, "BUY"), (low_con_id, "SELL")):
        leg = ComboLeg()
        leg.conId, leg.ratio, leg.action, leg.exchange = con_id, 1, action, "SMART"
        bag.comboLegs.append(leg)
    oid += 1
    await call(app, app.placeOrder, oid, bag, limit("BUY", 1, 5.0, "roll"))
    await until(app, lambda: "Filled" in statuses(app, oid), "combo Filled")
    await until(app, lambda: len([e for e in app.seen["execDetails"]
                                  if e[2].orderId == oid]) == 3, "three executions")
    kinds = sorted(c.secType for _r, c, e in app.seen["execDetails"] if e.orderId == oid)
    assert kinds == ["BAG", "OPT", "OPT"]

    # Error codes: an unknown contract (200), a read-only API (321).
    await call(app, app.reqContractDetails, 10, option(1.5, "NOPE"))
    await until(app, lambda: any(r == 10 and c == 200 for r, c, _t in app.seen["error"]),
                "error 200")
    peer.read_only_api = True
    oid += 1
    await call(app, app.placeOrder, oid, option(67.0), limit("SELL", 1, 50.0, "ro"))
    await until(app, lambda: any(r == oid and c == 321 for r, c, _t in app.seen["error"]),
                "error 321")


@pytest.mark.parametrize("peer", [158], indirect=True)
async def test_version_158_open_orders_decode_as_ibkrs_decoder_reads_them(
        session: App, peer: TwsPeer) -> None:
    """At 158 IBKR's decoder reads openOrder's `duration` (ib_async 2.1 only from 159):
    a resting order's openOrder, status and a cancel decode cleanly."""
    app = session
    assert app.serverVersion() == 158
    oid = app.seen["nextValidId"][-1][0]
    await call(app, app.placeOrder, oid, option(67.0), limit("SELL", 1, 50.0, "v158"))
    await until(app, lambda: any(o == oid for o, *_ in app.seen["openOrder"]), "openOrder")
    order = next(ord_ for o, _c, ord_, _s in app.seen["openOrder"] if o == oid)
    assert order.orderRef == "v158" and order.lmtPrice == 50.0
    assert order.duration == 2**31 - 1  # unset, read from its own field
    await call(app, app.cancelOrder, oid, OrderCancel())
    await until(app, lambda: "Cancelled" in statuses(app, oid), "Cancelled")


class HeldApp(App):
    """Its message thread stops in the first currentTime callback until let go."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.go = threading.Event(), threading.Event()

    def currentTime(self, time: int) -> None:
        self.inside.set()
        self.go.wait(WAIT_S)
        super().currentTime(time)


async def test_answers_queued_when_the_gateway_hangs_up_are_still_decoded(
        peer: TwsPeer, sim: SimBroker) -> None:
    """The harness's own end, with answers read but not yet decoded (as under load): the
    message thread decodes them all and ends; it does not die on them."""
    app, runner = await connected(peer, HeldApp())
    assert isinstance(app, HeldApp)
    await call(app, app.reqCurrentTime)
    assert await asyncio.to_thread(app.inside.wait, WAIT_S), "no currentTime"
    await call(app, app.reqPositions)  # its answers queue behind the held callback
    queued = len(await sim.positions()) + 1  # the rows and positionEnd
    for _ in range(int(WAIT_S / 0.01)):
        if app.msg_queue.qsize() >= queued:
            break
        await asyncio.sleep(0.01)
    assert app.msg_queue.qsize() >= queued, "the positions never queued up"
    peer.drop()
    app.go.set()
    await hang_up(peer, runner)
    assert app.crash is None, f"ibapi's message thread died: {app.crash!r}"
    assert app.count("currentTime") == 1 and app.count("positionEnd") == 1
    assert app.count("position") == len(await sim.positions())
