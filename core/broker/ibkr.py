"""The IBKR broker on ib_async (TWS / IB Gateway).

Only ib_async's ...Async methods are used, awaited on the running loop (the console's),
never the blocking ones and never nest_asyncio. Reconnection is the engine's job (one
backoff loop for every broker); this adapter reports drops as ConnectionChanged.

Implemented here: connect (with operator-readable failures), read-only mode, account
values, positions, server time, what-if margin, and IBKR's error codes as named
messages. Market data, chains, IV history and orders come with the full adapter and
its wire-protocol test peer (issue 8); until then they raise BrokerError saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from core.broker.base import (
    AccountValues,
    BrokerDisconnected,
    BrokerError,
    BrokerEvent,
    BrokerInfo,
    BrokerMessage,
    BrokerTimeout,
    ConnectionChanged,
    EventListener,
    Fill,
    IVPoint,
    OptionChain,
    OptionContract,
    OrderRequest,
    OrderState,
    Position,
    Quote,
    WhatIfMargin,
)
from core.clock import Clock, SystemClock

if TYPE_CHECKING:
    from core.config import IBKRSettings

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
    10167: IBCode("WARNING", "Not subscribed: showing delayed market data"),
    10168: IBCode("WARNING", "Not subscribed and delayed data not enabled"),
    10197: IBCode("WARNING", "No market data during a competing live session"),
}


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


def _expiry(text: str) -> date:
    return datetime.strptime(text[:8], "%Y%m%d").date()  # noqa: DTZ007 - a date


def map_position(pos: Any) -> Position | None:
    """ib_async Position -> Position; None for security types PutDesk does not trade."""
    c = pos.contract
    if c.secType == "OPT":
        multiplier = parse_ib_number(c.multiplier) or 100.0
        contract = OptionContract(c.symbol, _expiry(c.lastTradeDateOrContractMonth),
                                  float(c.strike), "P" if c.right.startswith("P") else "C")
        return Position(c.symbol, "OPT", float(pos.position), float(pos.avgCost) / multiplier,
                        contract, pos.account)
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


class IbkrBroker:
    def __init__(self, settings: IBKRSettings, clock: Clock | None = None) -> None:
        from ib_async import IB

        self.settings = settings
        self.clock = clock or SystemClock()
        self.ib = IB()
        self._listeners: list[EventListener] = []
        self._last_error = ""
        self._account = settings.account
        self._closing = False
        self.ib.errorEvent += self._on_error
        self.ib.disconnectedEvent += self._on_disconnected

    # --- connection ------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    @property
    def connected(self) -> bool:
        return bool(self.ib.isConnected())

    def info(self) -> BrokerInfo:
        return BrokerInfo(kind="ibkr", connected=self.connected,
                          description=f"TWS {self.where} client {self.settings.client_id}",
                          account_id=self._account, read_only=self.settings.read_only,
                          last_error=self._last_error)

    async def connect(self) -> None:
        if self.connected:
            return
        s = self.settings
        self._closing = False
        try:
            await asyncio.wait_for(
                self.ib.connectAsync(s.host, s.port, clientId=s.client_id,
                                     timeout=s.connect_timeout_seconds, readonly=s.read_only,
                                     account=s.account),
                timeout=s.connect_timeout_seconds + 2)
        except ConnectionRefusedError:
            self._fail(f"Cannot reach TWS/IB Gateway at {self.where} (connection refused). "
                       "Is it running with the API enabled (Configure > API > Settings: "
                       "Enable ActiveX and Socket Clients), and is the port right?")
        except TimeoutError:
            self._fail(f"TWS/IB Gateway at {self.where} did not complete the API handshake "
                       f"within {s.connect_timeout_seconds:g} s. Check that the API is "
                       f"enabled, that this host is a trusted IP, and that client id "
                       f"{s.client_id} is not in use by another session.")
        except OSError as exc:
            self._fail(f"Cannot reach TWS/IB Gateway at {self.where}: {exc.strerror or exc}")
        except Exception as exc:
            self._fail(f"Connecting to TWS/IB Gateway at {self.where} failed: "
                       f"{type(exc).__name__}: {exc}")
        accounts = list(self.ib.managedAccounts())
        if s.account and s.account not in accounts:
            self.ib.disconnect()
            self._fail(f"Account {s.account} is not managed by this login "
                       f"(managed: {', '.join(accounts) or 'none'})")
        if not self._account and len(accounts) == 1:
            self._account = accounts[0]
        if s.market_data_type != 1:
            self.ib.reqMarketDataType(s.market_data_type)
        self._last_error = ""
        self._emit(ConnectionChanged(True))

    def _fail(self, message: str) -> None:
        self._last_error = message
        with contextlib.suppress(Exception):
            self.ib.disconnect()
        raise BrokerError(message, code=502)

    async def disconnect(self) -> None:
        self._closing = True
        if self.connected:
            self.ib.disconnect()

    def _on_disconnected(self) -> None:
        if self._closing:
            return
        self._last_error = self._last_error or "connection to TWS lost"
        self._emit(ConnectionChanged(False, self._last_error))

    def _on_error(self, req_id: int, code: int, text: str, contract: Any = None) -> None:
        message = describe_code(code, text)
        if code in (326, 502, 504, 1100):
            self._last_error = message.message
        (log.info if message.severity == "INFO" else log.warning)(
            "IBKR %s (req %s): %s", code, req_id, message.message)
        self._emit(message)

    def add_listener(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _emit(self, event: BrokerEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("broker listener failed")

    def _require(self) -> None:
        if not self.connected:
            raise BrokerDisconnected(f"not connected to TWS/IB Gateway at {self.where}")

    # --- reads -----------------------------------------------------------------

    async def current_time(self) -> datetime:
        self._require()
        moment: datetime = await self.ib.reqCurrentTimeAsync()
        return moment

    async def account_values(self) -> AccountValues:
        self._require()
        rows = await self.ib.accountSummaryAsync(self._account)
        return map_account_values(list(rows), self._account, self.clock.now())

    async def positions(self) -> list[Position]:
        self._require()
        mapped = (map_position(p) for p in self.ib.positions(self._account))
        return [p for p in mapped if p is not None]

    async def what_if(self, order: OrderRequest) -> WhatIfMargin:
        """IBKR's what-if margin. The future never resolves if IBKR never computes the
        margin, so callers must bound it (the governor uses WHATIF_TIMEOUT_SECONDS)."""
        from ib_async import LimitOrder, MarketOrder, Option

        self._require()
        if order.contract is None:
            raise BrokerError("what-if for combo orders is not available on the IBKR "
                              "adapter yet")
        c = order.contract
        option = Option(c.symbol, c.expiration.strftime("%Y%m%d"), c.strike, c.right,
                        "SMART", currency="USD")
        qualified: list[Any] = list(await self.ib.qualifyContractsAsync(option))
        if not qualified or qualified[0] is None or isinstance(qualified[0], list):
            raise BrokerError(f"No security definition has been found for {c.key}", code=200)
        ib_order = (LimitOrder(order.action, order.quantity, order.limit_price)
                    if order.limit_price is not None
                    else MarketOrder(order.action, order.quantity))
        ib_order.orderRef = order.order_ref
        if self._account:
            ib_order.account = self._account
        try:
            state = await self.ib.whatIfOrderAsync(qualified[0], ib_order)
        except ConnectionError as exc:
            raise BrokerDisconnected(str(exc)) from None
        if state is None or not getattr(state, "initMarginAfter", ""):
            raise BrokerError("IBKR returned no what-if margin for the order")
        return map_what_if(state)

    async def _not_yet(self, what: str) -> Any:
        raise BrokerError(f"{what} is not available on the IBKR adapter yet")

    async def underlying_price(self, symbol: str) -> float | None:
        result: float | None = await self._not_yet("underlying prices")
        return result

    async def vix(self) -> float | None:
        result: float | None = await self._not_yet("VIX")
        return result

    async def underlying_iv(self, symbol: str) -> float | None:
        result: float | None = await self._not_yet("underlying implied volatility")
        return result

    async def option_chain(self, symbol: str) -> OptionChain | None:
        result: OptionChain | None = await self._not_yet("option chains")
        return result

    async def option_quote(self, contract: OptionContract) -> Quote:
        result: Quote = await self._not_yet("option quotes")
        return result

    async def iv_history(self, symbol: str, days: int = 365) -> list[IVPoint]:
        result: list[IVPoint] = await self._not_yet("IV history")
        return result

    async def place_order(self, order: OrderRequest) -> OrderState:
        result: OrderState = await self._not_yet("order placement")
        return result

    async def cancel_order(self, order_id: int) -> None:
        await self._not_yet("order cancellation")

    async def modify_order(self, order_id: int, limit_price: float) -> OrderState:
        result: OrderState = await self._not_yet("order modification")
        return result

    async def open_orders(self) -> list[OrderState]:
        result: list[OrderState] = await self._not_yet("open orders")
        return result

    async def fills(self) -> list[Fill]:
        result: list[Fill] = await self._not_yet("executions")
        return result


__all__ = ["IB_CODES", "BrokerTimeout", "IbkrBroker", "map_account_values", "map_position",
           "map_what_if", "parse_ib_number"]
