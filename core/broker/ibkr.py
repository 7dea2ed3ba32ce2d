"""The IBKR broker on ib_async (TWS / IB Gateway).

Only ib_async's ...Async methods and its non-blocking senders are used, awaited on the
running loop (the console's), never the blocking ones and never nest_asyncio.

- Every message goes through a Pacer (IBKR allows 50 messages a second) and historical
  data through a HistoryPacer (60 requests in 10 minutes); IV history is cached per
  symbol per day, so a scan does not spend the budget twice.
- Every request is bounded: no answer in time is BrokerTimeout, never a hang. What-if
  is the exception: IBKR sometimes never computes it, so its caller bounds it with
  WHATIF_TIMEOUT_SECONDS and falls back to the estimate.
- Quotes are short subscriptions (subscribe, wait for the fields, cancel) rather than
  snapshots: snapshots cannot carry generic ticks and take up to 11 s at IBKR.
- Reconnection is the engine's job (one backoff loop for every broker). This adapter
  reports socket drops and IBKR's 1100 (TWS lost IBKR) as ConnectionChanged(False), and
  after 1101/1102 stays "down" until the engine's connect() has run, so the engine
  reconciles before any new order.
- A fill is reported once its commission report arrives (or after COMMISSION_WAIT_S),
  and an order's Filled status only after its fills, as the simulator does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from core.broker.base import (
    AccountValues,
    BrokerDisconnected,
    BrokerError,
    BrokerEvent,
    BrokerInfo,
    BrokerTimeout,
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
    OrderStatusChanged,
    OrderType,
    Position,
    PositionsChanged,
    Quote,
    WhatIfMargin,
)
from core.broker.ibkr_mapping import (
    IB_CODES,
    NO_MARKET_DATA,
    SUMMARY_TAGS,
    combo_to_ib,
    commission_of,
    describe_code,
    map_account_values,
    map_fill,
    map_order_state,
    map_position,
    map_quote,
    map_what_if,
    option_of,
    parse_ib_number,
    price_or_none,
    request_of,
    ticker_price,
)
from core.broker.pacing import HistoryPacer, HistoryPacingError, Pacer
from core.clock import Clock, SystemClock

if TYPE_CHECKING:
    from core.config import IBKRSettings

log = logging.getLogger("putdesk.broker.ibkr")

T = TypeVar("T")

#: How long a fill waits for its commission report before it is reported without one.
COMMISSION_WAIT_S = 2.0
#: Position updates arriving together are reported as one change.
POSITIONS_SETTLE_S = 0.3
#: Identical historical requests within this window are answered from memory (IBKR
#: calls a repeat inside 15 s a pacing violation).
HISTORY_REPEAT_S = 15.0

#: Messages per second to TWS, every message counted: IBKR's limit is 50 (error 100 past
#: it); bursts arrive bunched at TWS, so the throttle keeps a margin.
MAX_MSGS_PER_SEC = 40.0

READ_ONLY = ("The IBKR connection is read-only (PUTDESK_IBKR_READONLY): orders and "
             "what-if requests are disabled")


class ClientIdInUse(BrokerError):
    """TWS refused the client id: another session holds it (326)."""


class IbkrBroker:
    def __init__(self, settings: IBKRSettings, clock: Clock | None = None,
                 pacing_msgs_per_sec: float = 45.0, spare_client_ids: int = 0) -> None:
        """`spare_client_ids`: when the client id is in use (326), try the next ones, up
        to this many. A one-shot command then takes the lowest free id of its range, so
        the same command run again after a crash gets its predecessor's id back, and with
        it (as at IBKR) the right to change the orders that id placed."""
        from ib_async import IB

        self.settings = settings
        self._spare_client_ids = spare_client_ids
        self.clock = clock or SystemClock()
        self.ib = IB()
        # Request errors (200, 321, 162 ...) as exceptions with their code, not as empty
        # results that would look like "no data".
        self.ib.RaiseRequestErrors = True
        # IBKR allows 50 messages a second; ib_async's throttle is the one place that sees
        # every message (its own startup and subscription traffic as well as ours), so it
        # is set with a margin under the limit, and the Pacer spaces our requests below it.
        rate = min(pacing_msgs_per_sec, MAX_MSGS_PER_SEC)
        self.ib.client.MaxRequests = int(rate)
        self.ib.client.RequestsInterval = 1
        self.pacer = Pacer(rate)
        # ib_async keys some requests by a fixed name ("positions", "openOrders"): two at
        # once would share one future and time out. One at a time per name.
        self._key_locks: dict[str, asyncio.Lock] = {}
        self.history_pacer = HistoryPacer()
        self._listeners: list[EventListener] = []
        self._last_error = ""
        self._account = settings.account
        self._closing = False
        self._link_down = False  # 1100: socket up, TWS cut off from IBKR
        self._data_lost = False  # 1101: subscriptions to be made again at connect()
        self._ready = False  # connect() completed since the last drop
        self._contracts: dict[object, Any] = {}  # qualified ib Contracts by our key
        self._by_conid: dict[int, OptionContract] = {}
        self._md_errors: dict[int, tuple[int, str]] = {}  # market-data errors by conId
        self._md_locks: dict[int, asyncio.Lock] = {}
        self._iv_cache: dict[tuple[str, int], tuple[date, float, list[IVPoint]]] = {}
        self._requests: dict[int, OrderRequest] = {}  # by IBKR orderId
        self._pending_fills: dict[str, tuple[Any, Any]] = {}  # execId -> (trade, ib fill)
        self._held_status: dict[int, Any] = {}  # orderId -> trade whose Filled waits
        self._positions_timer: asyncio.TimerHandle | None = None
        #: (account, conId) -> (position, avgCost) as last reported: a change is news
        self._held: dict[tuple[str, int], tuple[float, float]] = {}
        self._connected_before = False  # a later connect is a reconnect: look again
        self._what_ifs: dict[int, asyncio.Future[Any]] = {}
        self._refused: asyncio.Event | None = None  # set by 326 while connecting
        ib = self.ib
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        ib.orderStatusEvent += self._on_status
        ib.execDetailsEvent += self._on_exec
        ib.commissionReportEvent += self._on_commission
        ib.positionEvent += self._on_position

    # --- connection ------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    @property
    def connected(self) -> bool:
        return self._ready and not self._link_down and bool(self.ib.isConnected())

    def info(self) -> BrokerInfo:
        kinds = {1: "live", 2: "frozen", 3: "delayed", 4: "delayed-frozen"}
        return BrokerInfo(kind="ibkr", connected=self.connected,
                          description=f"TWS {self.where} client {self.settings.client_id}",
                          account_id=self._account, read_only=self.settings.read_only,
                          last_error=self._last_error,
                          extra={"market data": kinds[self.settings.market_data_type]})

    async def connect(self) -> None:
        if self.ib.isConnected():
            if self._link_down:
                raise BrokerError("TWS is up but has lost its connection to IBKR (1100); "
                                  "waiting for it to come back", code=1100)
            if self._data_lost:
                await self._resubscribe()
            if not self._ready:
                self._ready = True
                self._emit(ConnectionChanged(True))
                self._look_again()
            return
        for spare in range(self._spare_client_ids, -1, -1):
            try:
                await self._connect_as(self.settings)
                return
            except ClientIdInUse:
                if not spare:
                    raise
                self.settings = self.settings.model_copy(
                    update={"client_id": self.settings.client_id + 1})

    async def _connect_as(self, s: IBKRSettings) -> None:
        self._closing = False
        self._refused = asyncio.Event()
        try:
            await self._connect_or_refused(s)
        except ClientIdInUse:
            raise
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
        if not self.ib.isConnected():  # TWS closed the socket during the sync (e.g. 326)
            self._fail(self._last_error or f"TWS/IB Gateway at {self.where} closed the "
                       "connection during the handshake")
        accounts = list(self.ib.managedAccounts())
        if s.account and s.account not in accounts:
            self.ib.disconnect()
            self._fail(f"Account {s.account} is not managed by this login "
                       f"(managed: {', '.join(accounts) or 'none'})")
        if not self._account and len(accounts) == 1:
            self._account = accounts[0]
        if s.market_data_type != 1:
            await self.pacer.wait()
            self.ib.reqMarketDataType(s.market_data_type)
        self._link_down = False
        self._ready = True
        self._last_error = ""
        log.info("Connected to TWS/IB Gateway at %s as client %d (account %s, %s)",
                 self.where, s.client_id, self._account or "?",
                 "read-only" if s.read_only else "orders enabled")
        self._emit(ConnectionChanged(True))
        self._look_again()

    def _look_again(self) -> None:
        """After a reconnect: the book may have changed while the link was down (a fill,
        an assignment, a close in TWS), and the reports that came while connecting are
        not news (_on_position), so the engine is told to look once."""
        if self._connected_before:
            self._emit(PositionsChanged("reconnected: positions may have moved meanwhile"))
        self._connected_before = True

    async def _resubscribe(self) -> None:
        """After 1101 ("data lost") IBKR's subscriptions are gone: the account summary
        (re-requested on next use: its cache would otherwise freeze at the outage) and
        the account updates stream are asked again."""
        self._data_lost = False
        self.ib.wrapper.acctSummary.clear()
        await self.pacer.wait()
        client: Any = self.ib.client  # untyped
        client.reqAccountUpdates(True, self._account)
        log.warning("IBKR 1101 (data lost): account subscriptions requested again")

    async def _connect_or_refused(self, s: IBKRSettings) -> None:
        """connectAsync, cut short by error 326 (client id in use): ib_async would
        otherwise wait out its whole timeout on a socket TWS is about to close."""
        assert self._refused is not None
        connecting = asyncio.ensure_future(asyncio.wait_for(
            self.ib.connectAsync(s.host, s.port, clientId=s.client_id,
                                 timeout=s.connect_timeout_seconds, readonly=s.read_only,
                                 account=s.account),
            timeout=s.connect_timeout_seconds + 2))
        refused = asyncio.ensure_future(self._refused.wait())
        try:
            await asyncio.wait({connecting, refused}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            refused.cancel()
            self._refused = None
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
            self._fail(f"Client id {s.client_id} is already in use at {self.where} (IBKR "
                       "326): another PutDesk or API session holds it. Give this instance "
                       "its own PUTDESK_IBKR_CLIENT_ID.", ClientIdInUse)
        connecting.result()

    def _fail(self, message: str, kind: type[BrokerError] = BrokerError) -> None:
        self._last_error = message
        with contextlib.suppress(Exception):
            self.ib.disconnect()
        raise kind(message, code=502)

    async def disconnect(self) -> None:
        self._closing = True
        self._ready = False
        if self.ib.isConnected():
            self.ib.disconnect()

    def _on_disconnected(self) -> None:
        was_ready, self._ready = self._ready, False
        self._pending_fills.clear()
        self._held_status.clear()
        if self._closing or not was_ready:
            return
        self._last_error = self._last_error or "connection to TWS lost"
        log.error("TWS/IB Gateway connection lost: %s", self._last_error)
        self._emit(ConnectionChanged(False, self._last_error))

    def _on_error(self, req_id: int, code: int, text: str, contract: Any = None) -> None:
        message = describe_code(code, text)
        trade = self.ib.wrapper.trades.get((self.settings.client_id, req_id))
        if trade is not None and trade.order.orderRef:
            message = type(message)(message.code, message.message, trade.order.orderRef,
                                    message.severity)
        con_id = int(getattr(contract, "conId", None) or 0)
        if con_id and code in NO_MARKET_DATA:
            self._md_errors[con_id] = (code, message.message)
        what_if = self._what_ifs.get(req_id)
        if what_if is not None and not what_if.done() and message.severity != "INFO":
            what_if.set_exception(BrokerError(f"what-if refused: {message.message}", code=code))
        if code in (326, 502, 504, 1100):
            self._last_error = message.message
        if code == 326 and self._refused is not None:
            self._refused.set()
        (log.info if message.severity == "INFO" else log.warning)(
            "IBKR %s (req %s): %s", code, req_id, message.message)
        self._emit(message)
        if code == 1100 and not self._link_down:
            self._link_down = True
            self._ready = False
            self._emit(ConnectionChanged(False, message.message))
        elif code in (1101, 1102) and self._link_down:
            # Back, but reconcile first: connected again only once connect() has run.
            self._link_down = False
            if code == 1101:
                self._data_lost = True

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
            raise BrokerDisconnected(f"not connected to TWS/IB Gateway at {self.where}"
                                     + (f" ({self._last_error})" if self._last_error else ""))

    async def _call(self, what: str, make: Callable[[], Awaitable[T]],
                    within: float | None = None, key: str | None = None) -> T:
        """One request: connected, paced, bounded, and IBKR's failures as BrokerErrors.
        `key`: ib_async's fixed request key, if it has one (one such request at a time)."""
        if key is None:
            return await self._call_now(what, make, within)
        lock = self._key_locks.setdefault(key, asyncio.Lock())
        async with lock:
            return await self._call_now(what, make, within)

    async def _call_now(self, what: str, make: Callable[[], Awaitable[T]],
                        within: float | None) -> T:
        from ib_async import RequestError

        self._require()
        await self.pacer.wait()
        limit = within or self.settings.request_timeout_seconds
        try:
            return await asyncio.wait_for(make(), timeout=limit)
        except RequestError as exc:
            message = describe_code(exc.code, exc.message)
            raise BrokerError(f"{what}: {message.message}", code=exc.code) from None
        except TimeoutError:
            raise BrokerTimeout(f"{what}: no answer from TWS within {limit:g} s") from None
        except ConnectionError as exc:
            raise BrokerDisconnected(f"{what}: connection lost ({exc})") from None

    # --- contracts -------------------------------------------------------------

    async def _qualified(self, key: object, make: Callable[[], Any], label: str) -> Any:
        found = self._contracts.get(key)
        if found is not None:
            return found
        contract = make()
        result = await self._call(f"contract {label}",
                                  lambda: self.ib.qualifyContractsAsync(contract))
        if not result or result[0] is None or isinstance(result[0], list):
            raise BrokerError(f"No security definition found for {label} (ambiguous or "
                              "unknown)", code=200)
        qualified = result[0]
        self._contracts[key] = qualified
        return qualified

    async def _stock(self, symbol: str) -> Any:
        from ib_async import Stock

        return await self._qualified(("STK", symbol), lambda: Stock(symbol, "SMART", "USD"),
                                     symbol)

    async def _option(self, c: OptionContract) -> Any:
        from ib_async import Option

        qualified = await self._qualified(
            c, lambda: Option(c.symbol, c.expiration.strftime("%Y%m%d"), c.strike, c.right,
                              "SMART", currency="USD"), c.key)
        self._by_conid[qualified.conId] = c
        return qualified

    async def _vix_index(self) -> Any:
        from ib_async import Index

        return await self._qualified(("IND", "VIX"), lambda: Index("VIX", "CBOE", "USD"),
                                     "VIX index")

    async def _contract_for(self, order: OrderRequest) -> Any:
        from ib_async import ComboLeg as IBComboLeg
        from ib_async import Contract

        if order.contract is not None:
            return await self._option(order.contract)
        if order.stock is not None:
            return await self._stock(order.stock)
        legs = []
        for leg in order.legs:
            q = await self._option(leg.contract)
            legs.append(IBComboLeg(conId=q.conId, ratio=leg.ratio, action=leg.action,
                                   exchange="SMART"))
        return Contract(secType="BAG", symbol=order.underlying, exchange="SMART",
                        currency="USD", comboLegs=legs)

    async def _legs_of(self, trade: Any) -> list[ComboLeg]:
        """A reported combo's legs, resolving conIds IBKR sent us but we never asked for."""
        from ib_async import Contract

        legs = []
        for leg in trade.contract.comboLegs or []:
            contract = self._by_conid.get(leg.conId)
            if contract is None:
                probe = Contract(conId=leg.conId)
                details = await self._call(f"contract {leg.conId}",
                                           partial(self.ib.reqContractDetailsAsync, probe))
                found = details[0].contract if details else None
                if found is None or found.secType != "OPT":
                    raise BrokerError(f"combo leg {leg.conId} is not an option", code=200)
                contract = option_of(found)
                self._by_conid[leg.conId] = contract
            legs.append(ComboLeg(contract, "SELL" if leg.action == "SELL" else "BUY",
                                 leg.ratio or 1))
        return legs

    # --- account ---------------------------------------------------------------

    async def current_time(self) -> datetime:
        moment: datetime = await self._call("server time", self.ib.reqCurrentTimeAsync,
                                            key="currentTime")
        return moment

    async def account_values(self, fresh: bool = False) -> AccountValues:
        """The account summary. IBKR refreshes a summary subscription only every 3
        minutes, so `fresh` (after a fill) asks a new one-shot summary instead."""
        rows: Any
        if fresh:
            await self._call("account summary", self._one_shot_summary)
            rows = self.ib.wrapper.acctSummary.values()
        else:
            rows = await self._call("account summary",
                                    lambda: self.ib.accountSummaryAsync(self._account),
                                    key="accountSummary")
        return map_account_values(list(rows), self._account, self.clock.now())

    async def _one_shot_summary(self) -> None:
        """reqAccountSummary under its own id, cancelled at its end: the answer is the
        account as of now (it also refreshes ib_async's summary cache)."""
        client: Any = self.ib.client
        wrapper: Any = self.ib.wrapper
        req_id = client.getReqId()
        future = wrapper.startReq(req_id)
        client.reqAccountSummary(req_id, "All", ",".join(SUMMARY_TAGS))
        try:
            await future
        finally:
            if self.ib.isConnected():
                client.cancelAccountSummary(req_id)

    async def positions(self) -> list[Position]:
        rows = await self._call("positions", self.ib.reqPositionsAsync, key="positions")
        # An update that arrives while the request is out is in the answer beside the
        # reply's row for the same contract: the later message is the newer one.
        latest = {(p.account, p.contract.conId): p for p in rows}
        mapped = (map_position(p) for p in latest.values()
                  if not self._account or p.account == self._account)
        return [p for p in mapped if p is not None and p.quantity != 0]

    def _on_position(self, position: Any) -> None:
        # Fills, assignments and exercises all move positions; the engine looks again.
        # Every reqPositions (each positions() call) reports the whole book again: only a
        # position that differs from its last report is news, else the engine's own look
        # at the book would start its next look, for ever (~40 requests a second).
        key = (position.account, position.contract.conId)
        held = (float(position.position), float(position.avgCost))
        before, self._held[key] = self._held.get(key), held
        if before == held or not self._ready:
            return
        if self._account and position.account != self._account:
            return
        if self._positions_timer is not None:
            self._positions_timer.cancel()
        loop = asyncio.get_running_loop()
        self._positions_timer = loop.call_later(
            POSITIONS_SETTLE_S, self._emit, PositionsChanged("IBKR position update"))

    # --- market data -------------------------------------------------------------

    async def _watch(self, contract: Any, generic: str, ready: Callable[[Any], bool]) -> Any:
        """Subscribe, wait until `ready(ticker)` or the data timeout, cancel. IBKR's
        'no data for you' errors end the wait at once with a named BrokerError."""
        self._require()
        lock = self._md_locks.setdefault(contract.conId, asyncio.Lock())
        async with lock:
            self._md_errors.pop(contract.conId, None)
            await self.pacer.wait()
            ticker = self.ib.reqMktData(contract, generic, False, False)
            deadline = time.monotonic() + self.settings.market_data_timeout_seconds
            try:
                while not ready(ticker):
                    error = self._md_errors.get(contract.conId)
                    if error is not None:
                        raise BrokerError(f"{contract.symbol}: {error[1]}", code=error[0])
                    if not self.connected:
                        raise BrokerDisconnected("connection lost while waiting for data")
                    if time.monotonic() >= deadline:
                        log.debug("market data for %s incomplete after %.1f s",
                                  contract.localSymbol or contract.symbol,
                                  self.settings.market_data_timeout_seconds)
                        break
                    await asyncio.sleep(0.02)
                return ticker
            finally:
                if self.ib.isConnected():
                    await self.pacer.wait()
                    self.ib.cancelMktData(contract)

    async def underlying_price(self, symbol: str) -> float | None:
        ticker = await self._watch(await self._stock(symbol), "",
                                   lambda t: ticker_price(t) is not None
                                   and price_or_none(t.bid) is not None)
        return ticker_price(ticker)

    async def vix(self) -> float | None:
        ticker = await self._watch(await self._vix_index(), "",
                                   lambda t: ticker_price(t) is not None)
        return ticker_price(ticker)

    async def underlying_iv(self, symbol: str) -> float | None:
        """The underlying's 30-day implied vol: generic tick 106 on the stock (IBKR serves
        it for stocks, not options)."""
        ticker = await self._watch(await self._stock(symbol), "106",
                                   lambda t: parse_ib_number(t.impliedVolatility) is not None)
        iv = parse_ib_number(ticker.impliedVolatility)
        return iv if iv is not None and iv > 0 else None

    async def option_quote(self, contract: OptionContract) -> Quote:
        ticker = await self._watch(
            await self._option(contract), "",
            lambda t: t.modelGreeks is not None and price_or_none(t.bid) is not None
            and price_or_none(t.ask) is not None)
        return map_quote(ticker)

    async def option_chain(self, symbol: str) -> OptionChain | None:
        stock = await self._stock(symbol)
        chains = await self._call(f"option chain {symbol}",
                                  lambda: self.ib.reqSecDefOptParamsAsync(
                                      symbol, "", "STK", stock.conId))
        smart = [c for c in chains if c.exchange == "SMART"] or list(chains)
        if not smart:
            return None
        chain = next((c for c in smart if c.tradingClass == symbol), smart[0])
        expirations = sorted({datetime.strptime(e, "%Y%m%d").date()  # noqa: DTZ007
                              for e in chain.expirations})
        strikes = sorted({float(k) for k in chain.strikes if k > 0})
        if not expirations or not strikes:
            return None
        return OptionChain(symbol, tuple(expirations), tuple(strikes))

    async def iv_history(self, symbol: str, days: int = 365) -> list[IVPoint]:
        """Daily OPTION_IMPLIED_VOLATILITY bars. Empty = unknown (no data, pacing, or a
        timeout), never zero; a day's answer is kept for the day."""
        today = self.clock.now().date()
        cached = self._iv_cache.get((symbol, days))
        if cached is not None and cached[0] == today and (
                cached[2] or time.monotonic() - cached[1] < HISTORY_REPEAT_S):
            return cached[2]
        stock = await self._stock(symbol)
        duration = f"{math.ceil(days / 365)} Y" if days > 365 else f"{days} D"
        if days == 365:
            duration = "1 Y"
        bars: Any
        try:
            await self.history_pacer.wait()
            bars = await self._call(
                f"IV history {symbol}",
                lambda: self.ib.reqHistoricalDataAsync(
                    stock, "", duration, "1 day", "OPTION_IMPLIED_VOLATILITY", True,
                    formatDate=1, timeout=0),
                within=self.settings.history_timeout_seconds)
        except HistoryPacingError as exc:
            log.warning("IV history for %s unavailable: %s", symbol, exc)
            return []
        except BrokerTimeout as exc:
            log.warning("IV history for %s unavailable: %s", symbol, exc)
            return []
        except BrokerError as exc:
            if exc.code != 162:
                raise
            log.warning("IV history for %s unavailable: %s", symbol, exc)
            bars = []
        points = []
        for bar in bars:
            iv = parse_ib_number(bar.close)
            day = bar.date if isinstance(bar.date, date) else None
            if isinstance(bar.date, datetime):
                day = bar.date.date()
            if iv is not None and iv > 0 and day is not None:
                points.append(IVPoint(day, iv))
        points.sort(key=lambda p: p.day)
        self._iv_cache[(symbol, days)] = (today, time.monotonic(), points)
        return points

    # --- orders ------------------------------------------------------------------

    def _ib_order(self, order: OrderRequest) -> Any:
        from ib_async import LimitOrder, MarketOrder

        action, price = (combo_to_ib(order) if order.legs
                         else (order.action, order.limit_price))
        ib_order = (MarketOrder(action, order.quantity) if order.order_type is OrderType.MARKET
                    else LimitOrder(action, order.quantity, float(price or 0.0)))
        ib_order.orderRef = order.order_ref
        ib_order.tif = order.tif
        if self._account:
            ib_order.account = self._account
        return ib_order

    def _writable(self) -> None:
        if self.settings.read_only:
            raise BrokerError(READ_ONLY, code=321)

    async def what_if(self, order: OrderRequest) -> WhatIfMargin:
        """IBKR's what-if margin. Not bounded here: IBKR sometimes never computes it, so
        callers bound it (the governor uses WHATIF_TIMEOUT_SECONDS)."""
        self._writable()
        contract = await self._contract_for(order)
        state = await self._call("what-if", lambda: self._what_if(contract, order),
                                 within=3600)
        if state is None or parse_ib_number(getattr(state, "initMarginAfter", "")) is None:
            raise BrokerError("IBKR returned no what-if margin for the order")
        return map_what_if(state)

    def _what_if(self, contract: Any, order: OrderRequest) -> Awaitable[Any]:
        """ib_async's whatIfOrderAsync, keeping the request id: IBKR answers a what-if it
        cannot compute with error 321, which ib_async treats as a warning and never
        resolves; _on_error fails the future with the reason instead."""
        ib_order = self._ib_order(order)
        ib_order.whatIf = True
        wrapper: Any = self.ib.wrapper  # its startReq is untyped
        client: Any = self.ib.client
        req_id = client.getReqId()
        future: asyncio.Future[Any] = wrapper.startReq(req_id, contract)
        self._what_ifs[req_id] = future
        future.add_done_callback(lambda _f: self._what_ifs.pop(req_id, None))
        client.placeOrder(req_id, contract, ib_order)
        return future

    async def place_order(self, order: OrderRequest) -> OrderState:
        self._writable()
        contract = await self._contract_for(order)
        self._require()
        await self.pacer.wait()
        try:
            trade = self.ib.placeOrder(contract, self._ib_order(order))
        except ConnectionError as exc:
            raise BrokerDisconnected(f"order not sent: {exc}") from None
        self._requests[trade.order.orderId] = order
        log.info("IBKR order %d sent: %s %d %s (%s)", trade.order.orderId, order.action,
                 order.quantity, order.contract.key if order.contract else
                 order.stock or "combo " + order.underlying, order.order_ref)
        return map_order_state(trade, order)

    def _working(self, order_id: int, doing: str) -> Any:
        """Our still-working order with this id, or the BrokerError IBKR would give."""
        self._writable()
        self._require()
        trade = next((t for t in self.ib.trades()
                      if t.order.orderId == order_id and not t.order.whatIf), None)
        if trade is None:
            raise BrokerError(f"order {order_id} is unknown to this TWS session", code=135)
        if trade.isDone():
            raise BrokerError(f"order {order_id} is {trade.orderStatus.status}: cannot "
                              f"{doing} it", code=161)
        return trade

    async def cancel_order(self, order_id: int) -> None:
        trade = self._working(order_id, "cancel")
        await self.pacer.wait()
        self.ib.cancelOrder(trade.order)

    async def modify_order(self, order_id: int, limit_price: float) -> OrderState:
        trade = self._working(order_id, "modify")
        request = replace(await self._request_of(trade), limit_price=limit_price)
        trade.order.lmtPrice = (combo_to_ib(request)[1] if request.legs else limit_price)
        await self.pacer.wait()
        self.ib.placeOrder(trade.contract, trade.order)
        self._requests[order_id] = request
        return map_order_state(trade, request)

    async def _request_of(self, trade: Any) -> OrderRequest:
        known = self._requests.get(trade.order.orderId)
        if known is not None and known.order_ref == trade.order.orderRef:
            return known
        legs = await self._legs_of(trade) if trade.contract.secType == "BAG" else None
        request = request_of(trade, legs)
        self._requests[trade.order.orderId] = request
        return request

    async def open_orders(self) -> list[OrderState]:
        """Every client's open orders (reqAllOpenOrders): at IBKR reqOpenOrders answers
        only this client id's, so a second PutDesk on its own id would see none of the
        first one's and call them missing, or send a duplicate."""
        trades = await self._call("open orders", self.ib.reqAllOpenOrdersAsync,
                                  key="openOrders")
        states = []
        listed: set[int] = set()
        for trade in trades:
            # An order acknowledged while the request is out is in the answer twice (its
            # own openOrder and the reply's): ib_async gives both the same Trade.
            if trade.order.whatIf or trade.isDone() or id(trade) in listed:
                continue
            listed.add(id(trade))
            states.append(map_order_state(trade, await self._request_of(trade)))
        return states

    async def fills(self) -> list[Fill]:
        rows = await self._call("executions", self.ib.reqExecutionsAsync)
        mapped = (map_fill(f, commission_of(f)) for f in rows)
        return [f for f in mapped if f is not None]

    # --- order events ------------------------------------------------------------

    def _on_status(self, trade: Any) -> None:
        if trade.order.whatIf or not self._ready:
            return
        order_id = trade.order.orderId
        if trade.orderStatus.status == "Filled" and any(
                t.order.orderId == order_id for t, _f in self._pending_fills.values()):
            self._held_status[order_id] = trade  # reported after its fills
            return
        self._report_status(trade)

    def _report_status(self, trade: Any) -> None:
        request = self._requests.get(trade.order.orderId)
        if request is None or request.order_ref != trade.order.orderRef:
            try:
                legs = None
                if trade.contract.secType == "BAG":
                    legs = [ComboLeg(self._by_conid[leg.conId], leg.action, leg.ratio or 1)
                            for leg in trade.contract.comboLegs]
                request = request_of(trade, legs)
            except (KeyError, ValueError) as exc:
                log.warning("IBKR order %d: cannot describe it (%s)", trade.order.orderId, exc)
                return
        self._emit(OrderStatusChanged(map_order_state(trade, request)))

    def _on_exec(self, trade: Any, ib_fill: Any) -> None:
        if ib_fill.contract.secType not in ("OPT", "STK") or not self._ready:
            return
        exec_id = ib_fill.execution.execId
        self._pending_fills[exec_id] = (trade, ib_fill)
        asyncio.get_running_loop().call_later(COMMISSION_WAIT_S, self._release_fill, exec_id)

    def _on_commission(self, trade: Any, ib_fill: Any, _report: Any) -> None:
        self._release_fill(ib_fill.execution.execId)

    def _release_fill(self, exec_id: str) -> None:
        pending = self._pending_fills.pop(exec_id, None)
        if pending is None:
            return
        trade, ib_fill = pending
        fill = map_fill(ib_fill, commission_of(ib_fill))
        if fill is not None:
            self._emit(FillReceived(fill))
        order_id = trade.order.orderId
        held = self._held_status.get(order_id)
        if held is not None and not any(t.order.orderId == order_id
                                        for t, _f in self._pending_fills.values()):
            del self._held_status[order_id]
            self._report_status(held)


__all__ = ["IB_CODES", "BrokerTimeout", "IbkrBroker", "map_account_values", "map_position",
           "map_what_if", "parse_ib_number"]
