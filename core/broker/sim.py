"""The market simulator: the embedded default broker, behaving like IBKR.

Prices and greeks come from Black-Scholes on each underlying's price and IV (with a put
skew); margin from IBKR's Reg T rule for short options (what-if and account values use
the same model, as IBKR's do); limit orders fill when marketable and only while the
option trades, otherwise they rest; in-the-money options are assigned at expiration.
Faults can be injected (`faults`) so every fail-safe path runs against it.

Like TWS, the simulator keeps working orders and fills while the API connection is down
and does not deliver events until it is back; a client must reconcile after reconnecting.
"""

from __future__ import annotations

import asyncio
import logging
import math
import zlib
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from core.broker.base import (
    AccountValues,
    BrokerDisconnected,
    BrokerError,
    BrokerEvent,
    BrokerInfo,
    BrokerMessage,
    ComboLeg,
    ConnectionChanged,
    EventListener,
    Fill,
    FillReceived,
    IVPoint,
    OptionChain,
    OptionContract,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderStatusChanged,
    OrderType,
    Position,
    PositionsChanged,
    Quote,
    WhatIfMargin,
)
from core.broker.scenario import QuoteSpec, Scenario, ScenarioError
from core.clock import NEW_YORK, Clock, ManualClock
from core.market.calendar import MarketCalendar, default_calendar
from core.market.pricing import (
    SECONDS_PER_YEAR,
    bs_greeks,
    bs_price,
    ibkr_short_option_margin,
    is_broad_index,
)

log = logging.getLogger("putdesk.broker.sim")

COMMISSION_PER_CONTRACT = 0.65
MIN_COMMISSION = 1.00
MULTIPLIER = 100
#: VIX's log change per unit of the underlyings' average log return (about -5: a 1%
#: fall lifts VIX about 5%), kept within the range VIX has traded in.
VIX_BETA, VIX_MIN, VIX_MAX = 5.0, 9.0, 90.0


@dataclass
class SimFaults:
    """Faults to inject. All off by default."""

    connect_error: str | None = None
    whatif_timeout: bool = False  # what-if never answers (IBKR sometimes never does)
    whatif_error: str | None = None  # what-if fails with this message (code 321)
    reject_orders: str | None = None  # orders go Inactive with this reason (code 201)
    partial_fill: int | None = None  # the next fill is only this many contracts
    disconnect_after_accept: bool = False  # next order is accepted, then the link drops
    missing_greeks: set[str] = field(default_factory=set)  # symbols, or "*"
    missing_iv_history: set[str] = field(default_factory=set)  # symbols, or "*"
    missing_earnings: set[str] = field(default_factory=set)  # provider cannot say; or "*"
    reject_combos: bool = False  # combo (BAG) orders refused, as by an account without them
    latency_seconds: float = 0.0  # every request waits this long

    def hits(self, names: set[str], symbol: str) -> bool:
        return "*" in names or symbol in names


@dataclass
class _Underlying:
    price: float
    iv: float
    iv_low: float | None
    iv_high: float | None
    earnings: date | None
    sector: str | None
    skew: float
    dividend_yield: float


@dataclass
class _Holding:
    quantity: float
    avg_cost: float
    #: Commission paid for the quantity held (kept pro rata as it shrinks): IBKR's
    #: average cost includes it.
    commission: float = 0.0


@dataclass
class _Order:
    order_id: int
    perm_id: int
    request: OrderRequest
    status: OrderStatus
    filled: int = 0
    fill_value: float = 0.0
    message: str = ""

    @property
    def remaining(self) -> int:
        return self.request.quantity - self.filled

    def state(self) -> OrderState:
        avg = self.fill_value / self.filled if self.filled else None
        return OrderState(self.order_id, self.request.order_ref, self.request, self.status,
                          self.filled, self.remaining, avg, self.perm_id, self.message)


def _tick(price: float) -> float:
    return 0.01 if price < 3.0 else 0.05


def _strike_step(price: float) -> float:
    # IBKR lists $1 strikes on liquid names up to ~$200 and $5 above; a Barchart export
    # quoting a strike off this grid is one IBKR does not have (error 200).
    for limit, step in ((25, 0.5), (200, 1.0), (500, 5.0)):
        if price < limit:
            return step
    return 10.0


class SimBroker:
    """The simulated IBKR account and market (see module docstring)."""

    def __init__(
        self,
        scenario: Scenario,
        clock: Clock | None = None,
        calendar: MarketCalendar | None = None,
        seed: int = 7,
        rate: float = 0.04,
        label: str = "",
    ) -> None:
        self.scenario = scenario
        self.clock: Clock = clock or ManualClock(scenario.now)
        self.calendar = calendar or default_calendar()
        self.faults = SimFaults()
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._rate = rate
        self._label = label or "scenario"
        self._account_id = scenario.account.id
        self._cash = scenario.account.cash
        self._vix = scenario.vix
        self._unds = {
            sym: _Underlying(u.price, u.iv, u.iv_52w_low, u.iv_52w_high, u.earnings, u.sector,
                             u.skew, u.dividend_yield)
            for sym, u in scenario.underlyings.items()
        }
        self._options: dict[OptionContract, _Holding] = {
            p.contract: _Holding(p.quantity, p.avg_price) for p in scenario.positions
        }
        self._stocks: dict[str, _Holding] = {
            s.symbol: _Holding(s.shares, s.avg_price) for s in scenario.stock_positions
        }
        self._overrides: dict[OptionContract, QuoteSpec] = {
            OptionContract.parse_key(k): q for k, q in scenario.option_quotes.items()
        }
        self._orders: dict[int, _Order] = {}
        self._fills: list[Fill] = []
        self._next_id = 1
        self._exec_seq = 0
        self._connected = False
        self._last_error = ""
        self._listeners: list[EventListener] = []
        self._check_dates()

    def _check_dates(self) -> None:
        """ScenarioError naming the field when a date lies outside the market calendar:
        quoting the option, the session or the chain (a year ahead) would fail on it."""
        first, last = self.calendar.bounds
        latest = last - timedelta(days=380)
        now = self.scenario.now.date()
        if not first < now < latest:
            raise ScenarioError(f"now: {now} is outside the market calendar's range for a "
                                f"scenario ({first + timedelta(days=1)} to "
                                f"{latest - timedelta(days=1)})")
        expirations = [(f"positions[{i}].expiration", p.expiration)
                       for i, p in enumerate(self.scenario.positions)]
        expirations += [(f"option_quotes.{key}", OptionContract.parse_key(key).expiration)
                        for key in self.scenario.option_quotes]
        for where, expiration in expirations:
            if not first <= expiration <= last:
                raise ScenarioError(f"{where}: expiration {expiration} is outside the market "
                                    f"calendar ({first} to {last})")

    @classmethod
    def from_file(cls, path: Path, **kwargs: object) -> SimBroker:
        from core.broker.scenario import load_scenario

        return cls(load_scenario(path), label=path.name, **kwargs)  # type: ignore[arg-type]

    # --- connection and events ---------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    def info(self) -> BrokerInfo:
        return BrokerInfo(kind="sim", connected=self._connected,
                          description=f"Simulator ({self._label})",
                          account_id=self._account_id, last_error=self._last_error)

    async def connect(self) -> None:
        if self.faults.connect_error:
            self._last_error = self.faults.connect_error
            raise BrokerError(self.faults.connect_error, code=502)
        if not self._connected:
            self._connected = True
            self._last_error = ""
            self._emit(ConnectionChanged(True))

    async def disconnect(self) -> None:
        if self._connected:
            self._connected = False
            self._emit(ConnectionChanged(False, "disconnected by client"))

    def drop_connection(self, reason: str = "connection dropped") -> None:
        """Fault: the API link drops (orders at the broker keep working)."""
        if self._connected:
            self._connected = False
            self._last_error = reason
            self._emit(ConnectionChanged(False, reason))

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, event: BrokerEvent) -> None:
        if not self._connected and not isinstance(event, ConnectionChanged):
            return  # TWS delivers nothing while the API link is down
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("broker listener failed")

    async def _request(self) -> None:
        if not self._connected:
            raise BrokerDisconnected("not connected to the broker")
        if self.faults.latency_seconds > 0:
            await asyncio.sleep(self.faults.latency_seconds)
            if not self._connected:
                raise BrokerDisconnected("connection lost during the request")

    # --- market model --------------------------------------------------------------

    def _und(self, symbol: str) -> _Underlying:
        try:
            return self._unds[symbol]
        except KeyError:
            raise BrokerError(f"No security definition has been found for {symbol}",
                              code=200) from None

    def _years(self, expiration: date) -> float:
        close = self.calendar.expiration_close(expiration)
        return max((close - self.clock.now()).total_seconds(), 0.0) / SECONDS_PER_YEAR

    def _vol(self, contract: OptionContract, und: _Underlying) -> float:
        # Put skew: IV rises as strikes fall below the money (log-moneyness).
        lm = math.log(und.price / contract.strike)
        return und.iv * (1.0 + und.skew * max(lm, 0.0) + 0.1 * und.skew * max(-lm, 0.0))

    def _model(self, contract: OptionContract) -> tuple[float, dict[str, float], float]:
        und = self._und(contract.symbol)
        t, vol = self._years(contract.expiration), self._vol(contract, und)
        price = float(bs_price(und.price, contract.strike, t, vol, self._rate,
                               und.dividend_yield, contract.right))
        greeks = {k: float(v) for k, v in bs_greeks(und.price, contract.strike, t, vol,
                                                    self._rate, und.dividend_yield,
                                                    contract.right).items()}
        return price, greeks, vol

    def _bid_ask(self, mid: float) -> tuple[float, float]:
        if mid < 0.03:
            return 0.0, 0.05
        spread = max(0.05, 0.05 * mid)
        # Each side on its own tick grid ($0.01 under $3, $0.05 from $3), as quoted at
        # IBKR: a mid of 2.93 gives 2.85 / 3.05, never an ask of 3.01 that a limit on the
        # $0.05 grid could not reach.
        raw_bid, raw_ask = mid - spread / 2, mid + spread / 2
        bid_tick, ask_tick = _tick(raw_bid), _tick(raw_ask)
        bid = math.floor(round(raw_bid / bid_tick, 6)) * bid_tick
        ask = math.ceil(round(raw_ask / ask_tick, 6)) * ask_tick
        return max(round(bid, 2), 0.0), round(ask, 2)

    def _quote(self, contract: OptionContract) -> Quote:
        und = self._und(contract.symbol)
        mid, greeks, vol = self._model(contract)
        override = self._overrides.get(contract)
        if override is not None:
            bid, ask = override.bid, override.ask
            delta = override.delta if override.delta is not None else greeks["delta"]
            iv = override.iv if override.iv is not None else vol
        else:
            bid, ask = self._bid_ask(mid)
            delta, iv = greeks["delta"], vol
        if self.faults.hits(self.faults.missing_greeks, contract.symbol):
            return Quote(bid, ask, underlying_price=und.price, time=self.clock.now())
        return Quote(bid, ask, iv=iv, delta=delta, gamma=greeks["gamma"], theta=greeks["theta"],
                     vega=greeks["vega"], underlying_price=und.price, time=self.clock.now())

    def _mark(self, contract: OptionContract) -> float:
        if contract.symbol not in self._unds:
            holding = self._options.get(contract)
            return holding.avg_cost if holding else 0.0
        override = self._overrides.get(contract)
        if override is not None:
            return (override.bid + override.ask) / 2
        return self._model(contract)[0]

    # --- account model -----------------------------------------------------------------

    def _figures(self, cash: float, options: dict[OptionContract, _Holding],
                 stocks: dict[str, _Holding]) -> tuple[float, float, float]:
        """(net liquidation, initial margin, maintenance margin) for a book."""
        nlv, init, maint = cash, 0.0, 0.0
        for symbol, h in stocks.items():
            price = self._unds[symbol].price if symbol in self._unds else h.avg_cost
            value = h.quantity * price
            nlv += value
            init += abs(value) * 0.50
            maint += abs(value) * (0.25 if h.quantity > 0 else 0.30)
        for contract, h in options.items():
            mark = self._mark(contract)
            nlv += h.quantity * MULTIPLIER * mark
            if h.quantity < 0:
                und = self._unds.get(contract.symbol)
                s = und.price if und else contract.strike
                margin = float(ibkr_short_option_margin(s, contract.strike, mark, contract.right,
                                                        is_broad_index(contract.symbol)))
                init += margin * -h.quantity
                maint += margin * -h.quantity
        return nlv, init, maint

    def _account(self, cash: float, options: dict[OptionContract, _Holding],
                 stocks: dict[str, _Holding]) -> AccountValues:
        nlv, init, maint = self._figures(cash, options, stocks)
        elv = nlv
        return AccountValues(
            account_id=self._account_id, net_liquidation=nlv, available_funds=elv - init,
            excess_liquidity=elv - maint, init_margin_req=init, maint_margin_req=maint,
            equity_with_loan=elv, total_cash=cash, buying_power=max(elv - init, 0.0) * 2,
            as_of=self.clock.now())

    # --- Broker protocol: reads ---------------------------------------------------------

    async def current_time(self) -> datetime:
        await self._request()
        return self.clock.now()

    async def account_values(self, fresh: bool = False) -> AccountValues:
        await self._request()  # the simulator's figures are always as of now
        return self._account(self._cash, self._options, self._stocks)

    async def positions(self) -> list[Position]:
        await self._request()
        out = [Position(c.symbol, "OPT", h.quantity, h.avg_cost, c, self._account_id)
               for c, h in sorted(self._options.items())]
        out += [Position(s, "STK", h.quantity, h.avg_cost, None, self._account_id)
                for s, h in sorted(self._stocks.items())]
        return out

    def position_commission(self, contract: OptionContract) -> float:
        """Commission paid for the option quantity held now (0 if none)."""
        holding = self._options.get(contract)
        return holding.commission if holding else 0.0

    async def underlying_price(self, symbol: str) -> float | None:
        await self._request()
        und = self._unds.get(symbol)
        return round(und.price, 2) if und else None  # the walk keeps more digits

    async def vix(self) -> float | None:
        await self._request()
        return self._vix

    async def underlying_iv(self, symbol: str) -> float | None:
        await self._request()
        und = self._unds.get(symbol)
        if und is None or self.faults.hits(self.faults.missing_greeks, symbol):
            return None
        return und.iv

    async def option_chain(self, symbol: str) -> OptionChain | None:
        await self._request()
        und = self._unds.get(symbol)
        if und is None:
            return None
        return OptionChain(symbol, tuple(self._expirations()), tuple(self._strikes(und.price)))

    def _expirations(self) -> list[date]:
        today = self.clock.now().astimezone(NEW_YORK).date()
        fridays = [today + timedelta(days=(4 - today.weekday()) % 7 + 7 * i) for i in range(53)]
        chosen = [f for i, f in enumerate(fridays) if i < 10 or 15 <= f.day <= 21]
        out = []
        for friday in chosen:
            day = friday if self.calendar.is_session(friday) else (
                self.calendar.previous_session(friday))
            if day >= today and day not in out:
                out.append(day)
        return out

    @staticmethod
    def _strikes(price: float) -> list[float]:
        step = _strike_step(price)
        lo = math.floor(price * 0.6 / step) * step
        hi = math.ceil(price * 1.4 / step) * step
        return [round(lo + i * step, 2) for i in range(round((hi - lo) / step) + 1)]

    async def option_quote(self, contract: OptionContract) -> Quote:
        await self._request()
        return self._quote(contract)

    async def iv_history(self, symbol: str, days: int = 365) -> list[IVPoint]:
        await self._request()
        und = self._unds.get(symbol)
        if (und is None or und.iv_low is None or und.iv_high is None
                or self.faults.hits(self.faults.missing_iv_history, symbol)):
            return []
        end = self.clock.now().date()
        sessions = [end - timedelta(days=i) for i in range(1, days + 1)]
        sessions = [d for d in reversed(sessions) if d.weekday() < 5]
        # A mean-reverting path, stretched to span exactly the scenario's 52-week range.
        rng = np.random.default_rng(zlib.crc32(symbol.encode()) ^ self._seed)
        x = np.zeros(len(sessions))
        for i in range(1, len(x)):
            x[i] = 0.97 * x[i - 1] + rng.normal(0.0, 0.1)
        span = float(x.max() - x.min()) or 1.0
        ivs = und.iv_low + (x - x.min()) / span * (und.iv_high - und.iv_low)
        return [IVPoint(d, round(float(v), 6)) for d, v in zip(sessions, ivs, strict=True)]

    # --- what-if ---------------------------------------------------------------------------

    async def what_if(self, order: OrderRequest) -> WhatIfMargin:
        await self._request()
        if self.faults.whatif_error:
            raise BrokerError(self.faults.whatif_error, code=321)
        if self.faults.whatif_timeout:
            await asyncio.Event().wait()  # never answers; callers bound it with a timeout
        before = self._account(self._cash, self._options, self._stocks)
        cash, options = self._cash, {c: _Holding(h.quantity, h.avg_cost)
                                     for c, h in self._options.items()}
        for contract, side, qty, price in self._fill_plan(order, order.quantity, what_if=True):
            cash = self._apply(options, cash, contract, side, qty, price)
        commission = self._commission(order, order.quantity)
        after = self._account(cash - commission, options, self._stocks)
        return WhatIfMargin(before.init_margin_req, after.init_margin_req,
                            before.maint_margin_req, after.maint_margin_req,
                            before.equity_with_loan, after.equity_with_loan, commission)

    # --- orders ----------------------------------------------------------------------------

    def _legs(self, order: OrderRequest) -> list[tuple[OptionContract, str, int]]:
        if order.contract is not None:
            return [(order.contract, order.action, 1)]
        return [(leg.contract, leg.action, leg.ratio) for leg in order.legs]

    def _fill_plan(self, order: OrderRequest, qty: int, what_if: bool = False
                   ) -> list[tuple[OptionContract, str, int, float]]:
        """Per leg (contract, side, contracts, price) if the order is marketable now;
        [] if not. A what-if prices at the limit (or the touch for market orders)."""
        quotes = [(c, side, ratio, self._quote(c)) for c, side, ratio in self._legs(order)]
        touch = []
        for c, side, ratio, q in quotes:
            price = q.bid if side == "SELL" else q.ask
            if price is None or (side == "SELL" and price <= 0):
                if not what_if:
                    return []
                price = 0.0
            touch.append((c, side, ratio * qty, float(price)))
        if order.order_type is OrderType.MARKET:
            return touch
        limit = float(order.limit_price or 0.0)
        if order.contract is not None:
            c, side, n, price = touch[0]
            if what_if:
                return [(c, side, n, limit)]
            marketable = price >= limit if side == "SELL" else price <= limit
            return touch if marketable else []
        # In cents: a float difference (6.90 - 5.85 = 1.0500000000000007, or 1.0499...)
        # must not leave a combo at its natural credit unfilled.
        net_credit = round(sum((p if s == "SELL" else -p) * (n / qty)
                               for _c, s, n, p in touch), 6)
        if what_if:
            return touch
        marketable = net_credit >= limit if order.action == "SELL" else -net_credit <= limit
        return touch if marketable else []

    @staticmethod
    def _apply(options: dict[OptionContract, _Holding], cash: float, contract: OptionContract,
               side: str, qty: int, price: float, commission: float = 0.0) -> float:
        signed = qty if side == "BUY" else -qty
        holding = options.get(contract)
        if holding is None:
            options[contract] = _Holding(signed, price, commission)
        else:
            new_qty = holding.quantity + signed
            if new_qty == 0:
                del options[contract]
            elif (holding.quantity > 0) == (signed > 0):
                holding.avg_cost = ((holding.avg_cost * abs(holding.quantity) + price * qty)
                                    / abs(new_qty))
                holding.quantity = new_qty
                holding.commission += commission
            elif (holding.quantity > 0) != (new_qty > 0):
                # Crossed through zero: the new side keeps its share of this commission.
                options[contract] = _Holding(new_qty, price, commission * abs(new_qty) / qty)
            else:
                holding.commission *= abs(new_qty) / abs(holding.quantity)
                holding.quantity = new_qty
        return cash - signed * MULTIPLIER * price

    @staticmethod
    def _commission(order: OrderRequest, qty: int) -> float:
        legs = len(order.legs) if order.legs else 1
        return round(max(MIN_COMMISSION, COMMISSION_PER_CONTRACT * qty * legs), 2)

    async def place_order(self, order: OrderRequest) -> OrderState:
        await self._request()
        if order.legs and self.faults.reject_combos:
            raise BrokerError("Combo orders are not supported for this account", code=10043)
        record = _Order(self._next_id, 900_000 + self._next_id, order, OrderStatus.PENDING_SUBMIT)
        self._next_id += 1
        self._orders[record.order_id] = record
        self._emit(OrderStatusChanged(record.state()))
        if self.faults.reject_orders:
            record.status, record.message = OrderStatus.INACTIVE, self.faults.reject_orders
            self._emit(BrokerMessage(201, f"Order rejected - reason: {record.message}",
                                     order.order_ref))
            self._emit(OrderStatusChanged(record.state()))
            return record.state()
        trading = self.calendar.options_trading(self.clock.now(), order.underlying)
        record.status = OrderStatus.SUBMITTED if trading else OrderStatus.PRE_SUBMITTED
        self._emit(OrderStatusChanged(record.state()))
        if self.faults.disconnect_after_accept:
            self.faults.disconnect_after_accept = False
            self._try_fill(record)
            self.drop_connection("connection lost after the order was sent")
            raise BrokerDisconnected("connection lost before the order was acknowledged")
        self._try_fill(record)
        return record.state()

    def _try_fill(self, record: _Order) -> None:
        if record.status.is_done or record.remaining <= 0:
            return
        order = record.request
        if order.stock is not None:
            self._try_fill_stock(record)
            return
        if not self.calendar.options_trading(self.clock.now(), order.underlying):
            return
        qty = record.remaining
        if self.faults.partial_fill:
            qty = min(qty, self.faults.partial_fill)
        plan = self._fill_plan(order, qty)
        if not plan:
            return
        self.faults.partial_fill = None  # spent on a fill, not on a look at the book
        commission = self._commission(order, qty)
        self._cash -= commission
        net = 0.0
        fills = []
        contracts = sum(n for _c, _s, n, _p in plan)
        for i, (contract, side, n, price) in enumerate(plan):
            self._cash = self._apply(self._options, self._cash, contract, side, n, price,
                                     commission * n / contracts)
            net += (price if side == "SELL" else -price) * n / qty
            self._exec_seq += 1
            fill = Fill(f"sim.{record.order_id}.{self._exec_seq}", record.order_id,
                        order.order_ref, contract.symbol, contract, side,  # type: ignore[arg-type]
                        n, price, self.clock.now(), commission if i == 0 else 0.0,
                        record.perm_id)
            self._fills.append(fill)
            fills.append(fill)
        record.filled += qty
        record.fill_value += (abs(net) if order.legs else plan[0][3]) * qty
        record.status = OrderStatus.FILLED if record.remaining == 0 else OrderStatus.SUBMITTED
        # Events only once the book is consistent: a listener may act on the world (even
        # move a price) and must never see this order half-filled.
        for fill in fills:
            self._emit(FillReceived(fill))
        self._emit(OrderStatusChanged(record.state()))
        # As IBKR's position updates after a fill: the book is looked at again now.
        self._emit(PositionsChanged(f"{order.order_ref or record.order_id} filled {qty}"))

    def _try_fill_stock(self, record: _Order) -> None:
        """Shares trade in the regular session at the touch ($0.01 wide around the price);
        commission $0.005 a share, at least $1."""
        order = record.request
        assert order.stock is not None
        info = self.calendar.session_at(self.clock.now())
        if info.session.value != "REGULAR":
            return
        und = self._unds.get(order.stock)
        holding = self._stocks.get(order.stock)
        price = und.price if und else (holding.avg_cost if holding else None)
        if price is None:
            return
        touch = round(price - 0.01, 2) if order.action == "SELL" else round(price + 0.01, 2)
        if order.order_type is OrderType.LIMIT:
            limit = float(order.limit_price or 0.0)
            if (order.action == "SELL" and touch < limit) or (
                    order.action == "BUY" and touch > limit):
                return
        qty = record.remaining
        signed = qty if order.action == "BUY" else -qty
        commission = round(max(MIN_COMMISSION, 0.005 * qty), 2)
        self._cash += -signed * touch - commission
        if holding is None:
            self._stocks[order.stock] = _Holding(signed, touch)
        else:
            holding.quantity += signed
            if holding.quantity == 0:
                del self._stocks[order.stock]
        record.filled += qty
        record.fill_value += touch * qty
        record.status = OrderStatus.FILLED
        self._exec_seq += 1
        fill = Fill(f"sim.{record.order_id}.{self._exec_seq}", record.order_id,
                    order.order_ref, order.stock, None, order.action, qty, touch,
                    self.clock.now(), commission, record.perm_id)
        self._fills.append(fill)
        self._emit(FillReceived(fill))
        self._emit(OrderStatusChanged(record.state()))
        self._emit(PositionsChanged(f"{order.action} {qty} {order.stock}"))

    async def cancel_order(self, order_id: int) -> None:
        await self._request()
        record = self._orders.get(order_id)
        if record is None:
            raise BrokerError(f"order {order_id} is unknown", code=135)
        if record.status.is_done:
            raise BrokerError(f"order {order_id} is {record.status.value}, not cancellable",
                              code=161)
        record.status = OrderStatus.CANCELLED
        self._emit(BrokerMessage(202, "Order Canceled - reason:", record.request.order_ref,
                                 "INFO"))
        self._emit(OrderStatusChanged(record.state()))

    async def modify_order(self, order_id: int, limit_price: float) -> OrderState:
        await self._request()
        record = self._orders.get(order_id)
        if record is None or record.status.is_done:
            raise BrokerError(f"order {order_id} cannot be modified", code=161)
        record.request = replace(record.request, limit_price=limit_price)
        self._emit(OrderStatusChanged(record.state()))
        self._try_fill(record)
        return record.state()

    async def open_orders(self) -> list[OrderState]:
        await self._request()
        return [o.state() for o in self._orders.values() if not o.status.is_done]

    async def fills(self) -> list[Fill]:
        await self._request()
        return list(self._fills)

    # --- time, expiry and world controls -------------------------------------------------

    def advance(self, delta: timedelta) -> datetime:
        if not isinstance(self.clock, ManualClock):
            raise TypeError("advance() needs the simulator to run on a ManualClock")
        self.clock.advance(delta)
        self.process_time()
        return self.clock.now()

    def process_time(self) -> None:
        """Expire and assign what the clock has passed, then work resting orders."""
        now = self.clock.now()
        changed = []
        for contract, holding in list(self._options.items()):
            if self.calendar.expiration_close(contract.expiration) > now:
                continue
            del self._options[contract]
            und = self._unds.get(contract.symbol)
            s = und.price if und else contract.strike
            itm = s < contract.strike if contract.right == "P" else s > contract.strike
            if itm:
                # IBKR exercises/assigns in-the-money options at expiration.
                delta_shares = self._deliver(contract, holding.quantity)
                changed.append(f"{contract.key} assigned: {delta_shares:+d} {contract.symbol}")
            else:
                changed.append(f"{contract.key} expired worthless")
            for record in self._orders.values():
                legs = [record.request.contract] if record.request.contract else [
                    leg.contract for leg in record.request.legs]
                if contract in legs and not record.status.is_done:
                    record.status = OrderStatus.CANCELLED
                    record.message = "contract expired"
                    self._emit(OrderStatusChanged(record.state()))
        for reason in changed:
            log.info("Simulator: %s", reason)
        if changed:
            self._emit(PositionsChanged("; ".join(changed)))
        for record in list(self._orders.values()):
            self._try_fill(record)

    def _deliver(self, contract: OptionContract, quantity: float) -> int:
        """The shares of `quantity` options exercised or assigned at the strike; returns the
        signed change in shares."""
        shares = int(abs(quantity)) * MULTIPLIER
        buys = (contract.right == "P") == (quantity < 0)
        delta_shares = shares if buys else -shares
        self._cash -= delta_shares * contract.strike
        stock = self._stocks.get(contract.symbol)
        if stock is None:
            self._stocks[contract.symbol] = _Holding(delta_shares, contract.strike)
        else:
            total = stock.quantity + delta_shares
            if total == 0:
                del self._stocks[contract.symbol]
            else:
                if (stock.quantity > 0) == (delta_shares > 0):
                    stock.avg_cost = ((stock.avg_cost * abs(stock.quantity)
                                       + contract.strike * abs(delta_shares))
                                      / abs(total))
                stock.quantity = total
        return delta_shares

    def assign_early(self, contract: OptionContract, contracts: int) -> None:
        """World control: `contracts` of a short option are assigned before expiration
        (American options can be, e.g. a deep in-the-money put): the option position
        shrinks, the shares arrive at the strike, and the book-changed event follows."""
        holding = self._options.get(contract)
        if holding is None or holding.quantity >= 0 or not 0 < contracts <= -holding.quantity:
            raise ValueError(f"contracts: {contracts} is not a part of a short {contract.key}")
        holding.commission *= (holding.quantity + contracts) / holding.quantity
        holding.quantity += contracts
        if holding.quantity == 0:
            del self._options[contract]
        delta_shares = self._deliver(contract, -contracts)
        log.info("Simulator: %s assigned early: %+d %s", contract.key, delta_shares,
                 contract.symbol)
        self._emit(PositionsChanged(f"{contract.key} assigned: {delta_shares:+d} "
                                    f"{contract.symbol}"))

    def _touch(self, symbol: str) -> None:
        for contract in [c for c in self._overrides if c.symbol == symbol]:
            del self._overrides[contract]  # a scripted quote is stale once its world moves
        for record in list(self._orders.values()):
            if record.request.underlying == symbol:
                self._try_fill(record)

    def set_price(self, symbol: str, price: float) -> None:
        if price <= 0:
            raise ValueError("price must be positive")
        self._und(symbol).price = price
        self._touch(symbol)

    def set_iv(self, symbol: str, iv: float) -> None:
        if iv <= 0:
            raise ValueError("iv must be positive")
        self._und(symbol).iv = iv
        self._touch(symbol)

    def set_vix(self, vix: float | None) -> None:
        self._vix = vix

    def random_walk(self, days: float, vol_scale: float = 1.0) -> None:
        """Move every underlying by one seeded geometric-Brownian step of `days` at its
        implied volatility, and VIX with the market: against the average move
        (VIX_BETA), so a falling book comes with a rising VIX."""
        dt = days / 365.0
        if dt <= 0:
            return
        moves = []
        for symbol in sorted(self._unds):
            und = self._unds[symbol]
            sigma = und.iv * vol_scale
            shock = float(self._rng.normal())
            step = -0.5 * sigma**2 * dt + sigma * math.sqrt(dt) * shock
            moves.append(step)
            und.price = max(0.01, und.price * math.exp(step))  # unrounded: steps are small
            self._touch(symbol)
        if self._vix is not None and moves:
            mean = sum(moves) / len(moves)
            self._vix = round(min(VIX_MAX, max(VIX_MIN, self._vix * math.exp(-VIX_BETA * mean))),
                              2)

    # --- the world as data (the paper gateway persists it) ------------------------------

    def world_state(self) -> dict[str, Any]:
        """Everything that changed since the scenario was loaded, as JSON-able data:
        cash, holdings (with their commission), prices, VIX, orders, fills, ids and the
        random generator. `restore_world_state` on a simulator built from the same
        scenario continues from exactly here."""
        def request(r: OrderRequest) -> dict[str, Any]:
            return {"action": r.action, "quantity": r.quantity, "order_ref": r.order_ref,
                    "contract": r.contract.key if r.contract else None,
                    "legs": [[leg.contract.key, leg.action, leg.ratio] for leg in r.legs],
                    "order_type": r.order_type.value, "limit_price": r.limit_price,
                    "tif": r.tif, "symbol": r.symbol, "stock": r.stock}

        return {
            "cash": self._cash, "vix": self._vix, "next_id": self._next_id,
            "exec_seq": self._exec_seq, "rng": self._rng.bit_generator.state,
            "underlyings": {s: {"price": u.price, "iv": u.iv} for s, u in self._unds.items()},
            "options": [[c.key, h.quantity, h.avg_cost, h.commission]
                        for c, h in self._options.items()],
            "stocks": [[s, h.quantity, h.avg_cost, h.commission]
                       for s, h in self._stocks.items()],
            "overrides": sorted(c.key for c in self._overrides),
            "orders": [{"id": o.order_id, "perm_id": o.perm_id, "request": request(o.request),
                        "status": o.status.value, "filled": o.filled,
                        "fill_value": o.fill_value, "message": o.message}
                       for o in self._orders.values()],
            "fills": [{"exec_id": f.exec_id, "order_id": f.order_id, "order_ref": f.order_ref,
                       "symbol": f.symbol, "contract": f.contract.key if f.contract else None,
                       "side": f.side, "quantity": f.quantity, "price": f.price,
                       "time": f.time.isoformat(), "commission": f.commission,
                       "perm_id": f.perm_id} for f in self._fills],
        }

    def order_requests(self) -> dict[int, OrderRequest]:
        """Every order's request by order id, done or working."""
        return {o.order_id: o.request for o in self._orders.values()}

    def restore_world_state(self, data: dict[str, Any]) -> None:
        """The inverse of world_state(); KeyError/ValueError/TypeError on bad data, and
        then nothing of this simulator has changed."""
        key = OptionContract.parse_key

        def request(d: dict[str, Any]) -> OrderRequest:
            return OrderRequest(
                action=d["action"], quantity=int(d["quantity"]), order_ref=str(d["order_ref"]),
                contract=key(d["contract"]) if d["contract"] else None,
                legs=tuple(ComboLeg(key(k), a, int(n)) for k, a, n in d["legs"]),
                order_type=OrderType(d["order_type"]), limit_price=d["limit_price"],
                tif=d["tif"], symbol=str(d["symbol"]), stock=d["stock"])

        unds = {s: replace(self._unds[s], price=float(u["price"]), iv=float(u["iv"]))
                if s in self._unds else None for s, u in data["underlyings"].items()}
        if any(u is None for u in unds.values()):
            raise ValueError("underlyings: a symbol the scenario does not have")
        options = {key(k): _Holding(float(q), float(a), float(c))
                   for k, q, a, c in data["options"]}
        stocks = {str(s): _Holding(float(q), float(a), float(c)) for s, q, a, c in data["stocks"]}
        keep = set(data["overrides"])
        orders = {}
        for o in data["orders"]:
            orders[int(o["id"])] = _Order(int(o["id"]), int(o["perm_id"]), request(o["request"]),
                                          OrderStatus(o["status"]), int(o["filled"]),
                                          float(o["fill_value"]), str(o["message"]))
        fills = [Fill(str(f["exec_id"]), int(f["order_id"]), str(f["order_ref"]),
                      str(f["symbol"]), key(f["contract"]) if f["contract"] else None,
                      f["side"], int(f["quantity"]), float(f["price"]),
                      datetime.fromisoformat(f["time"]), f["commission"], f["perm_id"])
                 for f in data["fills"]]
        rng = np.random.default_rng(self._seed)
        rng.bit_generator.state = data["rng"]
        # Everything parsed: only now does the simulator change.
        self._cash, self._vix = float(data["cash"]), data["vix"]
        self._next_id, self._exec_seq = int(data["next_id"]), int(data["exec_seq"])
        self._rng = rng
        self._unds = {s: u for s, u in unds.items() if u is not None}
        self._options, self._stocks, self._orders, self._fills = options, stocks, orders, fills
        self._overrides = {c: q for c, q in self._overrides.items() if c.key in keep}

    def earnings_date(self, symbol: str) -> date | None:
        und = self._unds.get(symbol)
        return und.earnings if und else None

    def sector(self, symbol: str) -> str | None:
        und = self._unds.get(symbol)
        return und.sector if und else None

    def symbols(self) -> list[str]:
        return sorted(self._unds)

    def earnings_symbols(self) -> list[str]:
        """Symbols the simulated earnings provider can answer for (not faulted)."""
        return [s for s in sorted(self._unds)
                if not self.faults.hits(self.faults.missing_earnings, s)]
