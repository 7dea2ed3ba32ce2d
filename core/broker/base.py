"""The Broker protocol: what PutDesk needs from a broker, and the types it speaks.

Two implementations: the simulator (`core/broker/sim.py`, the default) and IBKR through
ib_async (`core/broker/ibkr.py`). Every engine path runs against either, so the types
here say exactly what IBKR can and cannot tell us: any figure IBKR may leave unset is
Optional, and None means "the broker did not say", never zero.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, Protocol, runtime_checkable

Right = Literal["P", "C"]
Action = Literal["BUY", "SELL"]


class BrokerError(Exception):
    """A broker request failed. `code` is IBKR's error code where there is one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class BrokerDisconnected(BrokerError):
    """The broker connection is down; nothing was sent."""


class BrokerTimeout(BrokerError):
    """The broker did not answer in time."""


@dataclass(frozen=True, order=True)
class OptionContract:
    """An equity option. Multiplier 100, SMART routing, USD."""

    symbol: str
    expiration: date
    strike: float
    right: Right = "P"

    @property
    def key(self) -> str:
        """Stable text key, e.g. 'AAPL 20261218 200 P' (the scenario's option_quotes key)."""
        return f"{self.symbol} {self.expiration:%Y%m%d} {self.strike:g} {self.right}"

    @staticmethod
    def parse_key(text: str) -> OptionContract:
        parts = text.split()
        if len(parts) != 4:
            raise ValueError(f"option key {text!r} is not 'SYMBOL YYYYMMDD STRIKE P|C'")
        symbol, expiry, strike, right = parts
        if right not in ("P", "C"):
            raise ValueError(f"option key {text!r}: right must be P or C")
        exp = datetime.strptime(expiry, "%Y%m%d").date()  # noqa: DTZ007 - a date, no time
        return OptionContract(symbol.upper(), exp, float(strike), right)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ComboLeg:
    contract: OptionContract
    action: Action
    ratio: int = 1


@dataclass(frozen=True)
class AccountValues:
    """IBKR account tags PutDesk uses. None = the broker did not report it."""

    account_id: str
    net_liquidation: float | None
    available_funds: float | None
    excess_liquidity: float | None
    init_margin_req: float | None
    maint_margin_req: float | None
    equity_with_loan: float | None
    total_cash: float | None
    buying_power: float | None = None
    as_of: datetime | None = None

    @property
    def margin_utilization(self) -> float | None:
        """Initial margin / equity with loan (the spec's utilisation)."""
        if self.init_margin_req is None or not self.equity_with_loan:
            return None
        return self.init_margin_req / self.equity_with_loan


@dataclass(frozen=True)
class Position:
    """A broker position. Options carry `contract`; stock has contract None.

    quantity: contracts (negative = short) for options, shares for stock.
    avg_cost: per share for stock, per option share (premium) for options.
    """

    symbol: str
    sec_type: Literal["OPT", "STK"]
    quantity: float
    avg_cost: float
    contract: OptionContract | None = None
    account_id: str = ""


@dataclass(frozen=True)
class Quote:
    """A market quote. For options the greeks are IBKR's model greeks; any may be None."""

    bid: float | None
    ask: float | None
    last: float | None = None
    iv: float | None = None
    delta: float | None = None
    gamma: float | None = None
    theta: float | None = None
    vega: float | None = None
    underlying_price: float | None = None
    time: datetime | None = None
    delayed: bool = False

    @property
    def mid(self) -> float | None:
        if self.bid is None or self.ask is None or self.bid < 0 or self.ask <= 0:
            return None
        return (self.bid + self.ask) / 2


@dataclass(frozen=True)
class OptionChain:
    symbol: str
    expirations: tuple[date, ...]
    strikes: tuple[float, ...]


@dataclass(frozen=True)
class IVPoint:
    """One daily implied-volatility bar (IBKR OPTION_IMPLIED_VOLATILITY close)."""

    day: date
    iv: float


@dataclass(frozen=True)
class WhatIfMargin:
    """IBKR's OrderState margin figures for a what-if order. None = unset by IBKR."""

    init_margin_before: float | None
    init_margin_after: float | None
    maint_margin_before: float | None
    maint_margin_after: float | None
    equity_with_loan_before: float | None
    equity_with_loan_after: float | None
    commission: float | None
    warning: str = ""

    @property
    def init_margin_change(self) -> float | None:
        if self.init_margin_after is None or self.init_margin_before is None:
            return None
        return self.init_margin_after - self.init_margin_before


class OrderType(enum.StrEnum):
    LIMIT = "LMT"
    MARKET = "MKT"


@dataclass(frozen=True)
class OrderRequest:
    """An order to send. `contract` for a single leg; `legs` for a combo (BAG) order.

    For a combo, `action`/`limit_price` apply to the combo as a whole: SELL at a
    positive limit means a net credit of at least that much per unit.
    order_ref is PutDesk's intent id; it round-trips through IBKR and is how
    reconciliation recognises an order after a reconnect.
    """

    action: Action
    quantity: int
    order_ref: str
    contract: OptionContract | None = None
    legs: tuple[ComboLeg, ...] = ()
    order_type: OrderType = OrderType.LIMIT
    limit_price: float | None = None
    tif: Literal["DAY", "GTC"] = "DAY"
    symbol: str = ""
    stock: str | None = None  # shares of this symbol (selling assigned stock)

    def __post_init__(self) -> None:
        kinds = (self.contract is not None) + bool(self.legs) + (self.stock is not None)
        if kinds != 1:
            raise ValueError("an order has exactly one of a contract, combo legs or a stock")
        if self.quantity <= 0:
            raise ValueError("order quantity must be positive")
        if self.order_type is OrderType.LIMIT and self.limit_price is None:
            raise ValueError("a limit order needs a limit price")

    @property
    def underlying(self) -> str:
        if self.contract is not None:
            return self.contract.symbol
        if self.stock is not None:
            return self.stock
        return self.legs[0].contract.symbol


class OrderStatus(enum.StrEnum):
    PENDING_SUBMIT = "PendingSubmit"
    PRE_SUBMITTED = "PreSubmitted"
    SUBMITTED = "Submitted"
    FILLED = "Filled"
    CANCELLED = "Cancelled"
    INACTIVE = "Inactive"  # rejected by the broker

    @property
    def is_done(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.INACTIVE)


@dataclass(frozen=True)
class OrderState:
    order_id: int
    order_ref: str
    request: OrderRequest
    status: OrderStatus
    filled: int = 0
    remaining: int = 0
    avg_fill_price: float | None = None
    perm_id: int | None = None
    message: str = ""


@dataclass(frozen=True)
class Fill:
    exec_id: str
    order_id: int
    order_ref: str
    symbol: str
    contract: OptionContract | None
    side: Action
    quantity: int
    price: float
    time: datetime
    commission: float | None = None
    perm_id: int | None = None


# --- events -----------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionChanged:
    connected: bool
    reason: str = ""


@dataclass(frozen=True)
class OrderStatusChanged:
    state: OrderState


@dataclass(frozen=True)
class FillReceived:
    fill: Fill


@dataclass(frozen=True)
class BrokerMessage:
    """An error or warning from the broker (IBKR error code where there is one)."""

    code: int | None
    message: str
    order_ref: str = ""
    severity: Literal["INFO", "WARNING", "ERROR"] = "ERROR"


@dataclass(frozen=True)
class PositionsChanged:
    """Positions changed outside an order of ours (e.g. assignment at expiry)."""

    reason: str = ""


BrokerEvent = (
    ConnectionChanged | OrderStatusChanged | FillReceived | BrokerMessage | PositionsChanged
)
EventListener = Callable[[BrokerEvent], None]


@dataclass
class BrokerInfo:
    """What the console shows about the broker connection."""

    kind: Literal["sim", "ibkr"]
    connected: bool
    description: str
    account_id: str = ""
    read_only: bool = False
    last_error: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Broker(Protocol):
    """The async broker interface every engine service uses."""

    @property
    def connected(self) -> bool: ...

    def info(self) -> BrokerInfo: ...

    async def connect(self) -> None:
        """Connect; raises BrokerError with a readable message if it cannot."""
        ...

    async def disconnect(self) -> None: ...

    def add_listener(self, listener: EventListener) -> None: ...

    def remove_listener(self, listener: EventListener) -> None: ...

    async def current_time(self) -> datetime: ...

    async def account_values(self, fresh: bool = False) -> AccountValues:
        """The account's figures. `fresh`: as of now, never a cached subscription's older
        values (after a fill, the post-trade check must see the fill)."""
        ...

    async def positions(self) -> list[Position]: ...

    async def underlying_price(self, symbol: str) -> float | None: ...

    async def vix(self) -> float | None: ...

    async def underlying_iv(self, symbol: str) -> float | None:
        """The underlying's current 30-day implied volatility (IBKR generic tick 106)."""
        ...

    async def option_chain(self, symbol: str) -> OptionChain | None: ...

    async def option_quote(self, contract: OptionContract) -> Quote: ...

    async def iv_history(self, symbol: str, days: int = 365) -> list[IVPoint]:
        """Daily implied-volatility bars, oldest first. Empty = unknown (never zero)."""
        ...

    async def what_if(self, order: OrderRequest) -> WhatIfMargin:
        """IBKR what-if margin for the order. Raises BrokerError/BrokerTimeout on failure."""
        ...

    async def place_order(self, order: OrderRequest) -> OrderState: ...

    async def cancel_order(self, order_id: int) -> None: ...

    async def modify_order(self, order_id: int, limit_price: float) -> OrderState: ...

    async def open_orders(self) -> list[OrderState]: ...

    async def fills(self) -> list[Fill]:
        """Executions the broker reports for this session (IBKR: today's)."""
        ...
