"""ib_async objects -> PutDesk's broker types, on real ib_async objects: the edges IBKR
has (unset values, -1 bids, vega/theta -2, rejections reported as Cancelled, combos)."""

from datetime import UTC, date, datetime

import pytest
from ib_async import (
    ComboLeg as IBComboLeg,
)
from ib_async import (
    CommissionReport,
    Contract,
    Execution,
    Order,
    OrderStatus,
    Ticker,
    Trade,
    TradeLogEntry,
)
from ib_async import (
    Fill as IBFill,
)
from ib_async.objects import OptionComputation

from core.broker.base import ComboLeg, OptionContract, OrderRequest
from core.broker.base import OrderStatus as Status
from core.broker.ibkr_mapping import (
    combo_from_ib,
    combo_to_ib,
    commission_of,
    map_fill,
    map_order_state,
    map_quote,
    map_status,
    request_of,
    ticker_price,
)

OLD = OptionContract("AAPL", date(2026, 12, 18), 200.0)
NEW = OptionContract("AAPL", date(2027, 1, 15), 195.0)
NOW = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)


def opt(c: OptionContract) -> Contract:
    return Contract(secType="OPT", symbol=c.symbol, conId=hash(c) % 10**6,
                    lastTradeDateOrContractMonth=c.expiration.strftime("%Y%m%d"),
                    strike=c.strike, right=c.right, multiplier="100", exchange="SMART")


def trade(status: str, log_codes=(), contract=None, **order) -> Trade:
    o = Order(orderId=7, action="SELL", totalQuantity=2, orderType="LMT", lmtPrice=1.5,
              orderRef="putdesk:1", **order)
    entries = [TradeLogEntry(NOW, status, text, code) for code, text in log_codes]
    return Trade(contract or opt(OLD), o, OrderStatus(orderId=7, status=status), [], entries)


def test_a_rejection_ib_async_reports_as_cancelled_is_a_rejection_with_its_reason():
    rejected = trade("Cancelled", [(201, "Order rejected - reason: insufficient margin")])
    assert map_status(rejected) == (Status.INACTIVE,
                                    "Order rejected: Order rejected - reason: insufficient "
                                    "margin")
    cancelled = trade("Cancelled", [(202, "Order Canceled - reason:")])
    assert map_status(cancelled)[0] is Status.CANCELLED
    assert map_status(trade("ValidationError", [(399, "held")]))[0] is Status.SUBMITTED
    assert map_status(trade("PreSubmitted"))[0] is Status.PRE_SUBMITTED


def test_order_state_round_trips_the_request_and_counts_combo_fills_per_unit():
    t = trade("Submitted")
    request = request_of(t)
    assert request == OrderRequest("SELL", 2, "putdesk:1", OLD, limit_price=1.5,
                                   symbol="AAPL")
    state = map_order_state(t, request)
    assert (state.order_id, state.filled, state.remaining, state.perm_id) == (7, 0, 2, None)


@pytest.mark.parametrize("credit", [True, False])
def test_combo_legs_and_prices_survive_the_trip_to_ibkr_and_back(credit):
    legs = (ComboLeg(OLD, "BUY"), ComboLeg(NEW, "SELL"))
    ours = OrderRequest("SELL" if credit else "BUY", 1, "r", legs=legs, limit_price=0.40)
    action, price = combo_to_ib(ours)
    assert action == "BUY" and price == (-0.40 if credit else 0.40)
    assert combo_from_ib(action, price, list(legs)) == (ours.action, 0.40, legs)
    # A combo someone SOLD at IBKR has its legs reversed: the same economic order.
    sold = combo_from_ib("SELL", 0.40 if credit else -0.40,
                         [ComboLeg(OLD, "SELL"), ComboLeg(NEW, "BUY")])
    assert sold == (ours.action, 0.40, legs)
    bag = Contract(secType="BAG", symbol="AAPL", comboLegs=[
        IBComboLeg(conId=1, ratio=1, action="BUY"), IBComboLeg(conId=2, ratio=1,
                                                                action="SELL")])
    t = trade("Submitted", contract=bag)
    t.order.action, t.order.lmtPrice = action, price
    assert request_of(t, list(legs)).legs == legs


def tick(contract=None, **fields) -> Ticker:
    """A Ticker as ib_async fills it (its constructor resets every field to unset)."""
    t = Ticker(contract=contract)
    for name, value in fields.items():
        setattr(t, name, value)
    return t


def test_quote_maps_unset_ticks_to_none_and_flags_delayed_data():
    t = tick(opt(OLD), bid=-1.0, ask=2.1, last=float("nan"), marketDataType=3)
    t.modelGreeks = OptionComputation(0, 0.31, -0.22, 2.0, 0.0, 0.01, -2.0, -2.0, 210.0)
    q = map_quote(t)
    assert q.bid is None and q.ask == 2.1 and q.last is None and q.delayed
    assert (q.iv, q.delta, q.gamma, q.underlying_price) == (0.31, -0.22, 0.01, 210.0)
    assert q.vega is None and q.theta is None  # ib_async leaves IBKR's -2 in place
    none = map_quote(Ticker(contract=opt(OLD)))
    assert none.bid is None and none.iv is None and not none.delayed


def test_ticker_price_prefers_a_last_inside_the_spread_then_the_mid_then_the_close():
    assert ticker_price(tick(bid=99.0, ask=101.0, last=100.5)) == 100.5
    assert ticker_price(tick(bid=99.0, ask=101.0, last=120.0)) == 100.0
    assert ticker_price(tick(last=98.0)) == 98.0
    assert ticker_price(tick(close=97.0)) == 97.0
    assert ticker_price(tick()) is None


def test_fills_map_sides_commissions_and_skip_the_combo_execution():
    e = Execution(execId="e1", time=NOW, side="SLD", shares=2.0, price=1.45, permId=99,
                  orderId=7, orderRef="putdesk:1")
    f = IBFill(opt(OLD), e, CommissionReport("e1", 1.30), NOW)
    fill = map_fill(f, commission_of(f))
    assert (fill.side, fill.quantity, fill.price, fill.commission, fill.contract) == (
        "SELL", 2, 1.45, 1.30, OLD)
    assert commission_of(IBFill(opt(OLD), e, CommissionReport(), NOW)) is None
    assert map_fill(IBFill(Contract(secType="BAG", symbol="AAPL"), e, CommissionReport(),
                           NOW), None) is None
