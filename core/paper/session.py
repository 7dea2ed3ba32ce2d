"""Per-socket session state, TWS's view of an order, and the state all parts of the
peer share (the peer is assembled from desks in accounts.py, order_flow.py, server.py)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from core.broker.base import OrderRequest

from .codec import Field, encode
from .contracts import ContractBook, Instrument
from .orders import ComboLegSpec, MarginState, OrderView

if TYPE_CHECKING:
    from core.broker.sim import SimBroker

log = logging.getLogger("core.paper")


def error_msg(version: int, req_id: int, code: int, text: str) -> list[Field]:
    f: list[Field] = [4, 2, req_id, code, text]
    if version >= 166:
        f.append("")  # advancedOrderRejectJson
    return f


@dataclass
class PeerOrder:
    """An order as TWS knows it: the client's ids on one side, the simulator's on the
    other. Kept across connections so a reconnecting clientId sees the same ids."""

    client_id: int
    order_id: int
    contract: list[Field]
    action: str
    quantity: float
    order_type: str
    tif: str
    account: str
    order_ref: str
    request: OrderRequest
    open_close: str = "O"
    combo_legs: list[ComboLegSpec] = field(default_factory=list)
    combo_prices: list[float | None] = field(default_factory=list)
    sim_id: int | None = None
    perm_id: int = 0
    status: str = "PendingSubmit"
    filled: float = 0.0
    remaining: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    message: str = ""
    execs: dict[int, tuple[float, float]] = field(default_factory=dict)  # conId → qty, value
    combo_execs: int = 0  # the combo's own (BAG) executions reported so far

    @property
    def working(self) -> bool:
        return self.status not in ("Filled", "Cancelled", "Inactive")

    def view(self, what_if: bool = False, margin: MarginState | None = None) -> OrderView:
        return OrderView(self.order_id, self.client_id, self.perm_id, self.contract,
                         self.action, self.quantity, self.order_type,
                         self.request.limit_price, None, self.tif, self.account,
                         self.order_ref, self.open_close, False, what_if,
                         "PreSubmitted" if what_if else self.status,
                         margin or MarginState(), self.combo_legs, self.combo_prices)


@dataclass(eq=False)
class Session:
    """One client socket."""

    peer: PeerState
    writer: asyncio.StreamWriter
    version: int = 0
    client_id: int | None = None
    market_data_type: int = 1
    positions_sub: bool = False
    account_sub: bool = False
    muted: bool = False  # responses are discarded: the socket is about to die
    closed: bool = False
    msg_times: deque[float] = field(default_factory=deque)
    positions_sent: dict[int, float] = field(default_factory=dict)
    portfolio_sent: set[int] = field(default_factory=set)

    def send(self, fields: list[Field]) -> None:
        if self.closed or self.muted or self.writer.is_closing():
            return
        self.writer.write(encode(fields))

    def error(self, req_id: int, code: int, text: str) -> None:
        self.send(error_msg(self.version, req_id, code, text))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()
            self.peer._forget(self)


@dataclass
class MarketSub:
    session: Session
    req_id: int
    inst: Instrument
    generic: set[str]


@dataclass(eq=False)
class SummarySub:
    session: Session
    req_id: int
    tags: frozenset[str]


class PeerState:
    """What every desk of the peer reads and writes."""

    def __init__(self, sim: SimBroker) -> None:
        self.sim = sim
        self.book = ContractBook()
        self.whatif_sentinel_first = False
        #: Layout mismatches and handler crashes: a test of the peer asserts it is empty.
        self.failures: list[str] = []
        self._sessions: set[Session] = set()
        self._by_client: dict[int, Session] = {}
        self._orders: dict[tuple[int, int], PeerOrder] = {}
        self._by_sim: dict[int, PeerOrder] = {}
        self._pending: list[tuple[OrderRequest, PeerOrder]] = []
        self._next_ids: dict[int, int] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._subs: dict[tuple[int, int], MarketSub] = {}
        self._summaries: dict[tuple[int, int], SummarySub] = {}
        self._prev_equity: tuple[date | None, float | None] = (None, None)
        #: TWS's "Read-Only API" setting: every order is refused with 321.
        self.read_only_api = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refresh_pending = False
        self._quiet_link = False

    @property
    def account(self) -> str:
        return self.sim.info().account_id

    def send_error(self, req_id: int, code: int, text: str) -> None:
        """Push an error message to every connected client now (1100, 1102, 10167...)."""
        for s in list(self._sessions):
            if s.client_id is not None:
                s.error(req_id, code, text)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget(self, session: Session) -> None:
        if session.client_id is not None and self._by_client.get(session.client_id) is session:
            del self._by_client[session.client_id]
        for key in [k for k, sub in self._subs.items() if sub.session is session]:
            del self._subs[key]
        for key in [k for k, summ in self._summaries.items() if summ.session is session]:
            del self._summaries[key]
