"""Market data and history messages built from the simulator's quotes.

Tick ids follow the client's market data type: live (1 bid, 2 ask, 4 last, 9 close,
13 model greeks) or delayed (66, 67, 68, 75, 83) for types 3 and 4, as TWS switches
them. Bid and ask always carry a size: ib_async reads a bid or ask of size 0 as "no
quote" and blanks the price.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

from core.broker.base import BrokerError
from core.clock import NEW_YORK

from .codec import UNSET_COMPUTED, UNSET_GREEK, Field
from .contracts import Instrument

if TYPE_CHECKING:
    from core.broker.sim import SimBroker

LIVE = {"bid": 1, "ask": 2, "last": 4, "close": 9, "model": 13}
DELAYED = {"bid": 66, "ask": 67, "last": 68, "close": 75, "model": 83}
STOCK_SIZE, OPTION_SIZE = 500.0, 10.0


def _price(req_id: int, tick: int, price: float, size: float) -> list[Field]:
    return [1, 6, req_id, tick, price, size, 0]


async def ticks(sim: SimBroker, data_type: int, req_id: int, inst: Instrument,
                generic: set[str]) -> list[list[Field]]:
    ids = DELAYED if data_type in (3, 4) else LIVE
    out: list[list[Field]] = []
    if inst.sec_type == "IND":
        vix = await sim.vix()
        if vix is not None:
            out += [_price(req_id, ids["last"], vix, 0.0), _price(req_id, ids["close"], vix, 0.0)]
        return out
    if inst.option is None:
        price = await sim.underlying_price(inst.symbol)
        if price is not None:
            out += [_price(req_id, ids["bid"], round(price - 0.01, 2), STOCK_SIZE),
                    _price(req_id, ids["ask"], round(price + 0.01, 2), STOCK_SIZE),
                    _price(req_id, ids["last"], price, 100.0),
                    _price(req_id, ids["close"], price, 0.0)]
        iv = await sim.underlying_iv(inst.symbol) if generic & {"104", "106"} else None
        if iv is not None:
            if "106" in generic:
                out.append([45, 6, req_id, 24, iv])  # implied volatility
            if "104" in generic:
                out.append([45, 6, req_id, 23, iv])  # historical: the sim has one vol
        return out
    q = await sim.option_quote(inst.option)
    if q.bid is not None:
        out.append(_price(req_id, ids["bid"], q.bid, OPTION_SIZE))
    if q.ask is not None:
        out.append(_price(req_id, ids["ask"], q.ask, OPTION_SIZE))
    if q.last is not None:
        out.append(_price(req_id, ids["last"], q.last, 1.0))

    def val(x: float | None, unset: float) -> float:
        return unset if x is None else x

    out.append([21, req_id, ids["model"], 0,
                val(q.iv, UNSET_COMPUTED), val(q.delta, UNSET_GREEK),
                val(q.mid, UNSET_COMPUTED), 0.0, val(q.gamma, UNSET_GREEK),
                val(q.vega, UNSET_GREEK), val(q.theta, UNSET_GREEK),
                val(q.underlying_price, UNSET_COMPUTED)])
    return out


_DURATION = re.compile(r"^\s*(\d+)\s*([SDWMY])\s*$")
_DAYS = {"S": 1 / 86400, "D": 1, "W": 7, "M": 30.5, "Y": 365}


def duration_days(text: str) -> int:
    m = _DURATION.match(text.upper())
    if not m:
        raise BrokerError(f"Historical Market Data Service error message:invalid duration "
                          f"{text!r}", code=162)
    return max(1, round(int(m.group(1)) * _DAYS[m.group(2)]))


async def historical(sim: SimBroker, req_id: int, inst: Instrument, what: str,
                     duration: str) -> list[Field]:
    """historicalData (17): every bar in one message, as TWS sends up to version 195.
    The simulator has daily implied-volatility history only; anything else is TWS's
    'no data' error 162."""
    days = duration_days(duration)
    points = []
    if what.upper() in ("OPTION_IMPLIED_VOLATILITY", "HISTORICAL_VOLATILITY") and (
            inst.sec_type == "STK"):
        points = await sim.iv_history(inst.symbol, days)
    if not points:
        raise BrokerError("Historical Market Data Service error message:HMDS query returned "
                          f"no data: {inst.local_symbol}@SMART {what}", code=162)
    end = sim.clock.now().astimezone(NEW_YORK)
    start = end - timedelta(days=days)
    f: list[Field] = [17, req_id, start.strftime("%Y%m%d %H:%M:%S"),
                      end.strftime("%Y%m%d %H:%M:%S"), len(points)]
    for p in points:
        f += [f"{p.day:%Y%m%d}", p.iv, p.iv, p.iv, p.iv, 0.0, p.iv, 0]
    return f
