"""Pure translations between ib_async's objects and PutDesk's broker types.

No I/O here, so every edge IBKR has (unset sentinels, -1 bids, vega/theta of -2, a
rejected order that ib_async reports as Cancelled) is pinned by fast tests.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from core.broker.base import (
    AccountValues,
    Action,
    BrokerMessage,
    ComboLeg,
    Fill,
    OptionContract,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    Quote,
    WhatIfMargin,
)

log = logging.getLogger("putdesk.broker.ibkr")

#: IBKR's "unset" double on the wire (Double.MAX_VALUE).
UNSET_DOUBLE = 1.7976931348623157e308

Severity = Literal["INFO", "WARNING", "ERROR"]


@dataclass(frozen=True)
class IBCode:
    severity: Severity
    meaning: str


#: IBKR error codes PutDesk acts on, with the name shown to the operator.
IB_CODES: dict[int, IBCode] = {
    100: IBCode("ERROR", "Max message rate exceeded (pacing)"),
    101: IBCode("ERROR", "Max number of market-data lines exceeded"),
    103: IBCode("ERROR", "Duplicate order id"),
    110: IBCode("ERROR", "Price is not a valid increment"),
    135: IBCode("ERROR", "Order not found"),
    161: IBCode("ERROR", "Order cannot be cancelled or modified in its state"),
    162: IBCode("WARNING", "Historical data pacing violation or no data"),
    200: IBCode("ERROR", "No security definition found"),
    201: IBCode("ERROR", "Order rejected"),
    202: IBCode("INFO", "Order cancelled"),
    321: IBCode("ERROR", "Error validating request"),
    326: IBCode("ERROR", "Client id already in use"),
    354: IBCode("WARNING", "Market data not subscribed"),
    399: IBCode("WARNING", "Order message warning"),
    502: IBCode("ERROR", "Cannot connect to TWS"),
    504: IBCode("ERROR", "Not connected"),
    1100: IBCode("ERROR", "Connectivity between TWS and IBKR lost"),
    1101: IBCode("WARNING", "Connectivity restored, market data lost (resubscribing)"),
    1102: IBCode("INFO", "Connectivity restored, data kept"),
    2103: IBCode("WARNING", "Market data farm connection broken"),
    2104: IBCode("INFO", "Market data farm connection OK"),
    2105: IBCode("WARNING", "Historical data farm connection broken"),
    2106: IBCode("INFO", "Historical data farm connection OK"),
    2157: IBCode("WARNING", "Security definition farm connection broken"),
    2158: IBCode("INFO", "Security definition farm connection OK"),
    10089: IBCode("WARNING", "Market data needs an additional subscription"),
    10090: IBCode("WARNING", "Part of the market data is not subscribed"),
    10167: IBCode("WARNING", "Not subscribed: showing delayed market data"),
    10168: IBCode("WARNING", "Not subscribed and delayed data not enabled"),
    10197: IBCode("WARNING", "No market data during a competing live session"),
}

#: Market-data errors after which waiting for ticks is pointless.
NO_MARKET_DATA = frozenset({101, 200, 354, 10089, 10168, 10197})


def parse_ib_number(value: object) -> float | None:
    """An IBKR numeric field as float; None for unset (the sentinel, empty, inf, nan,
    or text). Never returns the sentinel as a number."""
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if math.isnan(number) or math.isinf(number) or abs(number) >= UNSET_DOUBLE:
        return None
    return number


def price_or_none(value: object) -> float | None:
    """A tick price: IBKR sends -1 for "no bid/ask" and ib_async keeps nan for never."""
    number = parse_ib_number(value)
    return None if number is None or number == -1 else number


def greek_or_none(value: object) -> float | None:
    """ib_async 2.1 leaves unset vega and theta at IBKR's -2 (wrapper bug): None."""
    number = parse_ib_number(value)
    return None if number is None or number == -2 else number


def describe_code(code: int, text: str) -> BrokerMessage:
    known = IB_CODES.get(code)
    if known is None:
        severity: Severity = "INFO" if 2100 <= code < 2200 else "ERROR"
        return BrokerMessage(code, text, severity=severity)
    return BrokerMessage(code, f"{known.meaning}: {text}" if text else known.meaning,
                         severity=known.severity)


ACCOUNT_TAGS = {
    "NetLiquidation": "net_liquidation",
    "AvailableFunds": "available_funds",
    "ExcessLiquidity": "excess_liquidity",
    "InitMarginReq": "init_margin_req",
    "MaintMarginReq": "maint_margin_req",
    "EquityWithLoanValue": "equity_with_loan",
    "TotalCashValue": "total_cash",
    "BuyingPower": "buying_power",
}
#: The tags of a one-shot account summary: what PutDesk reads, nothing more.
SUMMARY_TAGS = tuple(ACCOUNT_TAGS)


def map_account_values(values: list[Any], account: str, as_of: datetime) -> AccountValues:
    """ib_async AccountValue rows -> AccountValues (USD or BASE; unset -> None)."""
    found: dict[str, float | None] = {}
    for row in values:
        if account and row.account != account:
            continue
        field_name = ACCOUNT_TAGS.get(row.tag)
        if field_name is None or row.currency not in ("USD", "BASE", ""):
            continue
        if field_name in found and row.currency == "BASE":
            continue  # prefer the USD row when both arrive
        found[field_name] = parse_ib_number(row.value)
    return AccountValues(account_id=account, as_of=as_of,
                         **{name: found.get(name) for name in ACCOUNT_TAGS.values()})


def expiry_of(text: str) -> date:
    return datetime.strptime(text[:8], "%Y%m%d").date()  # noqa: DTZ007 - a date


def option_of(c: Any) -> OptionContract:
    """An ib_async OPT Contract -> OptionContract."""
    return OptionContract(c.symbol, expiry_of(c.lastTradeDateOrContractMonth),
                          float(c.strike), "P" if str(c.right).startswith("P") else "C")


def map_position(pos: Any) -> Position | None:
    """ib_async Position -> Position; None for security types PutDesk does not trade."""
    c = pos.contract
    if c.secType == "OPT":
        multiplier = parse_ib_number(c.multiplier) or 100.0
        return Position(c.symbol, "OPT", float(pos.position), float(pos.avgCost) / multiplier,
                        option_of(c), pos.account)
    if c.secType == "STK":
        return Position(c.symbol, "STK", float(pos.position), float(pos.avgCost), None,
                        pos.account)
    log.debug("ignoring %s position in %s", c.secType, c.symbol)
    return None


def map_what_if(state: Any) -> WhatIfMargin:
    """ib_async OrderState (strings, sentinel for unset) -> WhatIfMargin (None for unset)."""
    return WhatIfMargin(
        init_margin_before=parse_ib_number(state.initMarginBefore),
        init_margin_after=parse_ib_number(state.initMarginAfter),
        maint_margin_before=parse_ib_number(state.maintMarginBefore),
        maint_margin_after=parse_ib_number(state.maintMarginAfter),
        equity_with_loan_before=parse_ib_number(state.equityWithLoanBefore),
        equity_with_loan_after=parse_ib_number(state.equityWithLoanAfter),
        commission=parse_ib_number(state.commission),
        warning=str(getattr(state, "warningText", "") or ""),
    )


def map_quote(ticker: Any) -> Quote:
    """An ib_async Ticker -> Quote: model greeks for options; delayed types flagged."""
    greeks = ticker.modelGreeks
    return Quote(
        bid=price_or_none(ticker.bid), ask=price_or_none(ticker.ask),
        last=price_or_none(ticker.last),
        iv=parse_ib_number(greeks.impliedVol) if greeks else None,
        delta=parse_ib_number(greeks.delta) if greeks else None,
        gamma=parse_ib_number(greeks.gamma) if greeks else None,
        theta=greek_or_none(greeks.theta) if greeks else None,
        vega=greek_or_none(greeks.vega) if greeks else None,
        underlying_price=price_or_none(greeks.undPrice) if greeks else None,
        time=ticker.time, delayed=ticker.marketDataType in (3, 4))


def ticker_price(ticker: Any) -> float | None:
    """Last inside the spread, else the mid, else last, else the previous close."""
    bid, ask, last = (price_or_none(ticker.bid), price_or_none(ticker.ask),
                      price_or_none(ticker.last))
    if bid is not None and ask is not None and 0 < bid <= ask:
        if last is not None and bid <= last <= ask:
            return last
        return (bid + ask) / 2
    return last if last is not None else price_or_none(ticker.close)


# --- orders ---------------------------------------------------------------------------

_STATUS = {
    "PendingSubmit": OrderStatus.PENDING_SUBMIT, "ApiPending": OrderStatus.PENDING_SUBMIT,
    "PreSubmitted": OrderStatus.PRE_SUBMITTED, "Submitted": OrderStatus.SUBMITTED,
    "PendingCancel": OrderStatus.SUBMITTED, "ApiUpdate": OrderStatus.SUBMITTED,
    # ib_async 2.x: a warning on a live order; the order is still working at IBKR.
    "ValidationError": OrderStatus.SUBMITTED,
    "Filled": OrderStatus.FILLED, "Cancelled": OrderStatus.CANCELLED,
    "ApiCancelled": OrderStatus.CANCELLED, "Inactive": OrderStatus.INACTIVE,
}


def map_status(trade: Any) -> tuple[OrderStatus, str]:
    """The order's status and its broker message. ib_async turns an order error (201
    rejected, margin, permissions) into status Cancelled; PutDesk calls that what it is,
    a rejection (Inactive), so the operator sees the reason and never "cancelled"."""
    status = _STATUS.get(trade.orderStatus.status, OrderStatus.SUBMITTED)
    entries = [e for e in trade.log if getattr(e, "errorCode", 0)]
    message = ""
    if entries:
        last = entries[-1]
        message = describe_code(last.errorCode, str(last.message)).message
        if status is OrderStatus.CANCELLED and last.errorCode not in (202, 10148, 10147):
            status = OrderStatus.INACTIVE
        if (trade.orderStatus.status == "ValidationError" and last.errorCode == 321
                and not _was_live(trade)):
            # ib_async keeps a 321 as a warning ("the order may still be live"), which is
            # true of a modify; a new order TWS refused (e.g. its API is read-only) never
            # reached the book: a rejection, with IBKR's text.
            status = OrderStatus.INACTIVE
    return status, message


def _was_live(trade: Any) -> bool:
    """The order was acknowledged by TWS (PreSubmitted/Submitted) at some point."""
    return any(getattr(e, "status", "") in ("PreSubmitted", "Submitted", "Filled")
               for e in trade.log) or bool(getattr(trade.order, "permId", 0))


def combo_to_ib(order: OrderRequest) -> tuple[str, float | None]:
    """PutDesk's combo (explicit leg actions; SELL = a net credit of `limit_price`) in
    IBKR's terms: BUY the combo as defined, at a negative price for a credit. IBKR would
    reverse every leg of a SELL combo, which is not what the legs say."""
    if order.limit_price is None:
        return "BUY", None
    return "BUY", (-order.limit_price if order.action == "SELL" else order.limit_price)


def combo_from_ib(action: str, price: float | None, legs: list[ComboLeg]
                  ) -> tuple[Action, float | None, tuple[ComboLeg, ...]]:
    """The inverse of combo_to_ib, for any combo IBKR reports (ours or not)."""
    if action == "SELL":  # IBKR reverses the legs of a sold combo
        legs = [ComboLeg(leg.contract, "SELL" if leg.action == "BUY" else "BUY", leg.ratio)
                for leg in legs]
        price = -price if price is not None else None
    if price is None:
        return "BUY", None, tuple(legs)
    return ("SELL", -price, tuple(legs)) if price < 0 else ("BUY", price, tuple(legs))


def request_of(trade: Any, legs: list[ComboLeg] | None = None) -> OrderRequest:
    """An order IBKR reports (e.g. after a reconnect) as the OrderRequest that made it.
    `legs`: the combo's legs resolved from their conIds."""
    c, o = trade.contract, trade.order
    order_type = OrderType.MARKET if o.orderType == "MKT" else OrderType.LIMIT
    limit = parse_ib_number(o.lmtPrice) if order_type is OrderType.LIMIT else None
    qty = max(1, round(float(o.totalQuantity)))
    tif: Literal["DAY", "GTC"] = "GTC" if o.tif == "GTC" else "DAY"
    action: Action = "SELL" if o.action == "SELL" else "BUY"
    if c.secType == "BAG":
        action, limit, combo = combo_from_ib(o.action, limit, legs or [])
        if order_type is OrderType.LIMIT and limit is None:
            limit = 0.0
        return OrderRequest(action, qty, o.orderRef, legs=combo, order_type=order_type,
                            limit_price=limit, tif=tif, symbol=c.symbol)
    if order_type is OrderType.LIMIT and limit is None:
        limit = 0.0
    if c.secType == "STK":
        return OrderRequest(action, qty, o.orderRef, stock=c.symbol, order_type=order_type,
                            limit_price=limit, tif=tif, symbol=c.symbol)
    return OrderRequest(action, qty, o.orderRef, option_of(c), order_type=order_type,
                        limit_price=limit, tif=tif, symbol=c.symbol)


def map_order_state(trade: Any, request: OrderRequest) -> OrderState:
    status, message = map_status(trade)
    s = trade.orderStatus
    filled = round(float(s.filled or 0))
    if trade.fills:
        filled = max(filled, round(sum(float(f.execution.shares) for f in trade.fills
                                       if f.contract.secType != "BAG")
                                   / _legs_per_unit(request)))
    avg = parse_ib_number(s.avgFillPrice) if s.avgFillPrice else None
    return OrderState(order_id=trade.order.orderId, order_ref=trade.order.orderRef,
                      request=request, status=status, filled=filled,
                      remaining=max(0, request.quantity - filled),
                      avg_fill_price=avg or None,
                      perm_id=(trade.order.permId or s.permId) or None, message=message)


def _legs_per_unit(request: OrderRequest) -> int:
    return sum(leg.ratio for leg in request.legs) if request.legs else 1


def map_fill(ib_fill: Any, commission: float | None) -> Fill | None:
    """An ib_async Fill -> Fill; None for a combo's own (BAG) execution, which would
    count the legs twice."""
    c, e = ib_fill.contract, ib_fill.execution
    if c.secType not in ("OPT", "STK"):
        return None
    contract = option_of(c) if c.secType == "OPT" else None
    return Fill(exec_id=e.execId, order_id=e.orderId, order_ref=e.orderRef, symbol=c.symbol,
                contract=contract, side="SELL" if e.side == "SLD" else "BUY",
                quantity=round(float(e.shares)), price=float(e.price), time=e.time,
                commission=commission, perm_id=e.permId or None)


def commission_of(ib_fill: Any) -> float | None:
    report = ib_fill.commissionReport
    if report is None or not report.execId:
        return None
    return parse_ib_number(report.commission)
