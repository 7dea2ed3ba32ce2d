"""TwsPeer: an asyncio TWS on 127.0.0.1 backed by the market simulator.

The peer is TWS; `SimBroker` is the IBKR back end behind it. Its "API link" is internal:
the peer connects it once and never lets a client socket touch it, so a client that
drops and reconnects finds its orders still working, exactly as with TWS.

Every request runs in its own task (a what-if that never answers must not block the
socket reader); order requests of one clientId take a FIFO lock so a cancel never
overtakes the placeOrder it refers to. State a handler reads from its session (market
data type) is set before its first await, so requests take effect in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from core.broker.base import BrokerDisconnected, BrokerError
from core.clock import NEW_YORK

from . import market
from .accounts import SUMMARY_REFRESH_SECONDS
from .codec import (
    HELLO_PREFIX,
    FieldReader,
    ProtocolError,
    encode,
    parse_hello,
    read_frame,
    request_id,
    request_name,
    split_fields,
)
from .contracts import UnknownContract, contract_details, read_contract, resolve
from .order_flow import OrderDesk
from .orders import parse_place_order
from .session import MarketSub, Session, log

if TYPE_CHECKING:
    from core.broker.sim import SimBroker

PACING_LIMIT = 50  # messages per second, TWS's documented API limit
#: The server versions whose layouts the gateway writes and reads (ib_async 2.1 offers
#: 157..178; IBKR's own client more): a client's range is answered with the highest
#: version both speak, and a client above MAX_SERVER_VERSION only is refused.
MIN_SERVER_VERSION, MAX_SERVER_VERSION = 157, 178
FARM_OK = ((2104, "Market data farm connection is OK:usfarm"),
           (2106, "HMDS data farm connection is OK:ushmds"),
           (2158, "Sec-def data farm connection is OK:secdefnj"))
#: Requests TWS takes without answering (or whose answer nothing here needs).
SILENT = frozenset({
    "reqAutoOpenOrders", "cancelMktData", "cancelHistoricalData",
    "cancelPositionsMulti", "cancelAccountUpdatesMulti", "setServerLogLevel",
    "reqNewsBulletins", "cancelNewsBulletins", "cancelMktDepth", "cancelRealTimeBars",
    "cancelPnL", "cancelPnLSingle", "cancelTickByTickData", "cancelHeadTimeStamp",
})


class TwsPeer(OrderDesk):
    """A TWS API server for ib_async, driven by a SimBroker (see module docstring)."""

    def __init__(self, sim: SimBroker, server_version: int = MAX_SERVER_VERSION,
                 host: str = "127.0.0.1", port: int = 0,
                 summary_refresh_seconds: float = SUMMARY_REFRESH_SECONDS) -> None:
        super().__init__(sim)
        if not MIN_SERVER_VERSION <= server_version <= MAX_SERVER_VERSION:
            raise ValueError(f"the gateway speaks server versions {MIN_SERVER_VERSION} to "
                             f"{MAX_SERVER_VERSION}, not {server_version}")
        self.server_version = server_version
        self.summary_refresh_seconds = summary_refresh_seconds
        self.host = host
        self.port = port  # 0: any free port (the bound one is here after start())
        #: Every request as received, for tests' count() and wait_for().
        self.record = True
        self.received: list[tuple[float, str, list[str]]] = []
        self._cues: list[str] = []  # per received request: the name fault cues match
        self.pacing_violations = 0
        self._server: asyncio.Server | None = None
        self._drops: list[str] = []
        self._errors: dict[str, list[tuple[int, str]]] = {}
        self._serving: set[asyncio.Task[Any]] = set()
        self._arrival = asyncio.Event()  # set on every request (wait_for)

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        await self.sim.connect()
        self.sim.add_listener(self._on_sim_event)
        for p in await self.sim.positions():
            self._instrument(p)  # held contracts get their conIds first
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._spawn(self._summary_cadence(self.summary_refresh_seconds))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for s in list(self._sessions):
            s.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._serving:
            # Closed sockets end their readers; waiting keeps asyncio from cancelling
            # them mid-read at loop shutdown (which it logs as an error).
            await asyncio.wait(self._serving, timeout=2)
        self.sim.remove_listener(self._on_sim_event)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # --- fault cues and observation -------------------------------------------------

    def drop(self) -> None:
        """Close every client socket now (a TWS/gateway restart); orders keep working."""
        for s in list(self._sessions):
            s.close()

    def drop_on(self, msg_name: str) -> None:
        """Close the socket right after the next `msg_name` request is handled; the
        answer to that request is never delivered. 'placeOrder:before' drops before the
        request reaches the simulator. A what-if placeOrder answers to 'whatIf', not
        'placeOrder'."""
        self._drops.append(msg_name)

    def error_on(self, msg_name: str, code: int, text: str) -> None:
        """Answer the next `msg_name` request with this error instead (what-ifs:
        'whatIf'), aimed at the request's own id (reqId/orderId) or -1."""
        self._errors.setdefault(msg_name, []).append((code, text))

    def count(self, msg_name: str) -> int:
        """Requests of that name received; 'whatIf' counts what-if placeOrders (which
        'placeOrder' counts too)."""
        return sum(1 for (_t, name, _f), cue in zip(self.received, self._cues, strict=True)
                   if msg_name in (name, cue))

    async def wait_for(self, msg_name: str, count: int = 1) -> None:
        """Until `count` requests named `msg_name` have arrived (bound it with
        asyncio.timeout)."""
        while self.count(msg_name) < count:
            self._arrival.clear()
            await self._arrival.wait()

    @property
    def client_ids(self) -> list[int]:
        return sorted(self._by_client)

    def sim_order_id(self, client_id: int, order_id: int) -> int | None:
        po = self._orders.get((client_id, order_id))
        return po.sim_id if po else None

    async def push_quotes(self) -> None:
        """Send every streaming market-data subscription fresh ticks from the sim."""
        for sub in list(self._subs.values()):
            if not sub.session.closed:
                for msg in await market.ticks(self.sim, sub.session.market_data_type,
                                              sub.req_id, sub.inst, sub.generic):
                    sub.session.send(msg)

    # --- connection and dispatch ----------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, writer)
        self._sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)
        try:
            if await reader.readexactly(4) != HELLO_PREFIX:
                return
            low, high, _options = parse_hello(await read_frame(reader))
            session.version = min(high, self.server_version)
            if session.version < max(low, MIN_SERVER_VERSION):
                log.warning("Paper gateway: a client offering server versions %d..%d is "
                            "outside %d..%d; hung up", low, high, MIN_SERVER_VERSION,
                            self.server_version)
                return  # TWS hangs up on a client it cannot speak to
            now = self.sim.clock.now().astimezone(NEW_YORK)
            writer.write(encode([session.version, now.strftime("%Y%m%d %H:%M:%S %Z")]))
            while not session.closed:
                self._on_request(session, split_fields(await read_frame(reader)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except ProtocolError as exc:
            self.failures.append(f"session: {exc}")
        except Exception as exc:  # a malformed frame must fail the test, not vanish
            log.exception("TWS peer session failed")
            self.failures.append(f"session: {exc!r}")
        finally:
            session.close()
            self._sessions.discard(session)

    def _on_request(self, s: Session, fields: list[str]) -> None:
        name = request_name(fields)
        cue = self._cue_name(s, name, fields)
        if self.record:  # off in the long-running gateway: the log would only grow
            self.received.append((time.monotonic(), name, list(fields)))
            self._cues.append(cue)
            self._arrival.set()
        self._pace(s)
        if name == "startApi":
            self._start_api(s, fields)
            return
        if s.client_id is None:
            return  # TWS ignores everything before startApi
        queued = self._errors.get(cue)
        if queued:
            code, text = queued.pop(0)
            s.error(request_id(name, fields), code, text)
            return
        if self._take_drop(f"{cue}:before"):
            s.close()
            return
        drop_after = self._take_drop(cue)
        if drop_after:
            s.muted = True
        if name == "reqMarketDataType":
            s.market_data_type = int(fields[2])  # before any later request's task runs
        self._spawn(self._handle(s, name, fields, drop_after))

    @staticmethod
    def _cue_name(s: Session, name: str, fields: list[str]) -> str:
        """The name fault cues match: a what-if placeOrder is 'whatIf', so a cue aimed at
        the real order is not spent on the what-if that precedes it."""
        if name == "placeOrder":
            with contextlib.suppress(ProtocolError):
                if parse_place_order(fields, s.version).what_if:
                    return "whatIf"
        return name

    def _take_drop(self, name: str) -> bool:
        if name in self._drops:
            self._drops.remove(name)
            return True
        return False

    def _pace(self, s: Session) -> None:
        now = time.monotonic()
        s.msg_times.append(now)
        while s.msg_times and now - s.msg_times[0] >= 1.0:
            s.msg_times.popleft()
        if len(s.msg_times) > PACING_LIMIT:
            self.pacing_violations += 1
            s.error(-1, 100, "Max rate of messages per second has been exceeded:"
                    f"max={PACING_LIMIT} rec={len(s.msg_times)} (1)")

    async def _handle(self, s: Session, name: str, fields: list[str], drop_after: bool) -> None:
        handler = getattr(self, f"_h_{name}", None)
        try:
            if handler is not None:
                await handler(s, fields)
            elif name not in SILENT:
                log.debug("TWS peer ignores %s", name)
        except ProtocolError as exc:
            self.failures.append(f"{name}: {exc}")
            s.error(request_id(name, fields), 320, f"Error reading request: {exc}")
        except UnknownContract:
            s.error(request_id(name, fields), UnknownContract.code, UnknownContract.text)
        except BrokerDisconnected:
            log.info("TWS peer: %s unanswered, the simulator link is down", name)
        except BrokerError as exc:
            s.error(request_id(name, fields), exc.code or 321, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("TWS peer handler %s failed", name)
            self.failures.append(f"{name}: {exc!r}")
        finally:
            if drop_after:
                s.close()

    def _start_api(self, s: Session, fields: list[str]) -> None:
        client_id = int(fields[2])
        other = self._by_client.get(client_id)
        if other is not None and not other.closed:
            s.error(-1, 326, "Unable to connect as the client id is already in use. "
                    "Retry with a unique client id.")
            s.close()
            return
        s.client_id = client_id
        self._by_client[client_id] = s
        s.send([15, 1, self.account])
        s.send([9, 1, self._next_ids.setdefault(client_id, 1)])
        for code, text in FARM_OK:
            s.error(-1, code, text)

    # --- contracts and market data ------------------------------------------------------

    async def _h_reqContractDetails(self, s: Session, fields: list[str]) -> None:
        r = FieldReader(fields, 2)
        req_id = r.integer() or 0
        wc = read_contract(r)
        r.skip(3)  # includeExpired, secIdType, secId
        if s.version >= 176:
            r.text()  # issuerId
        r.end()
        for inst in await resolve(self.book, self.sim, wc):
            und = self.book.stock(inst.symbol).con_id if inst.option else 0
            sector = self.sim.sector(inst.symbol) or ""
            name = "CBOE Volatility Index" if inst.sec_type == "IND" else inst.symbol
            s.send(contract_details(s.version, req_id, inst, und, name, sector))
        s.send([52, 1, req_id])

    async def _h_reqSecDefOptParams(self, s: Session, fields: list[str]) -> None:
        req_id, symbol = int(fields[1]), fields[2].upper()
        chain = await self.sim.option_chain(symbol)
        if chain is not None:
            exps = [f"{e:%Y%m%d}" for e in chain.expirations]
            s.send([75, req_id, "SMART", self.book.stock(symbol).con_id, symbol, "100",
                    len(exps), *exps, len(chain.strikes), *chain.strikes])
        s.send([76, req_id])

    async def _h_reqMktData(self, s: Session, fields: list[str]) -> None:
        data_type = s.market_data_type
        r = FieldReader(fields, 2)
        req_id = r.integer() or 0
        wc = read_contract(r)
        if wc.sec_type == "BAG":
            r.skip(4 * r.count())
        if r.flag():
            r.skip(3)  # delta-neutral contract
        generic = {g.strip() for g in r.text().split(",") if g.strip()}
        snapshot = r.flag()
        snapshot = r.flag() or snapshot  # a regulatory snapshot is a snapshot too
        r.text()  # mktDataOptions
        r.end()
        if wc.sec_type == "BAG":
            raise BrokerError("The peer does not quote combos", code=321)
        found = await resolve(self.book, self.sim, wc)
        if len(found) != 1:
            raise BrokerError("The contract description specified is ambiguous", code=200)
        s.send([58, 1, req_id, data_type])
        for msg in await market.ticks(self.sim, data_type, req_id, found[0], generic):
            s.send(msg)
        if snapshot:
            s.send([57, 1, req_id])
        else:
            self._subs[(id(s), req_id)] = MarketSub(s, req_id, found[0], generic)

    async def _h_cancelMktData(self, s: Session, fields: list[str]) -> None:
        self._subs.pop((id(s), int(fields[2])), None)

    async def _h_reqHistoricalData(self, s: Session, fields: list[str]) -> None:
        r = FieldReader(fields, 1)
        req_id = r.integer() or 0
        wc = read_contract(r)
        r.flag()  # includeExpired
        r.text()  # endDateTime
        r.text()  # barSizeSetting: the simulator has daily bars only
        duration = r.text()
        r.flag()  # useRTH
        what = r.text()
        r.text()  # formatDate
        if wc.sec_type == "BAG":
            r.skip(4 * r.count())
        r.flag()  # keepUpToDate
        r.text()  # chartOptions
        r.end()
        found = await resolve(self.book, self.sim, wc)
        s.send(await market.historical(self.sim, req_id, found[0], what, duration))
