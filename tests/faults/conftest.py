"""Shared pieces of the fault suite: `desk` (as tests/core's: an opened, connected engine
on a scenario world with fast order timings, no loops), a world with a scripted quote,
staging in one call, waiting for the engine's own reconnect, the log as lines."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from core.broker.base import OptionContract
from core.broker.sim import SimBroker
from core.db.tables import StagedOrder
from core.engine import Engine
from core.models import Opportunity
from tests.core.risk.worlds import world
from tests.factories import engines_on_worlds

#: tests/core/conftest.py's FAST order timings (reprice every 50 ms, a generous timeout),
#: and reconnects 0.1 s apart instead of 1 s, 2 s ...
FAULTS = {"ORDER_REPRICE_INTERVAL_SECONDS": "0.05", "ORDER_TIMEOUT_SECONDS": "5",
          "PUTDESK_IBKR_RECONNECT_MAX_SECONDS": "0.1"}

Desk = Callable[..., Awaitable[Engine]]

#: The option the order-life tests trade: KO at $70, the 68 put of 2026-12-31.
KO = "KO 20261231 68 P"
KO_PUT = OptionContract("KO", date(2026, 12, 31), 68.0, "P")


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    """make(world dict, **settings) -> an opened, connected engine on a simulator (no
    loops; its own reconnect does run when the link drops). As tests/core's `desk`."""
    async with engines_on_worlds(tmp_path, FAULTS) as make:
        yield make


@pytest.fixture(autouse=True)
def _log_everything(caplog: pytest.LogCaptureFixture) -> None:
    """Every fault test reads its named outcome from the log: capture from INFO."""
    caplog.set_level(logging.INFO)


def quoted(bid: float, ask: float, cash: float = 100_000.0, **kw: Any) -> dict[str, Any]:
    """The demo world with KO's 68 put quoted at bid/ask (delta -0.20, IV 20%)."""
    return world(cash=cash, option_quotes={KO: {"bid": bid, "ask": ask, "delta": -0.2,
                                                "iv": 0.2}}, **kw)


async def stage(engine: Engine, premium: float | None = None, *, symbol: str = "KO",
                strike: float = 68.0, expiration: date = date(2026, 12, 31),
                contracts: int | None = None) -> StagedOrder:
    decision = await engine.check(Opportunity(symbol, expiration, strike, premium,
                                              requested_contracts=contracts))
    assert decision.approved, decision.summary
    return await engine.stage(decision, "fault-suite")


def sim(engine: Engine) -> SimBroker:
    """The engine's broker, which in this suite is the simulator."""
    assert isinstance(engine.broker, SimBroker)
    return engine.broker


def broker_orders(engine: Engine, ref: str) -> list[Any]:
    """The simulator's orders (any state) carrying this orderRef."""
    return [o for o in sim(engine)._orders.values() if o.request.order_ref == ref]


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Until `check()` holds (a reconnect, a kill-switch sync ...), at most `within` s."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not check():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def messages(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


def dead_port() -> int:
    """A local port nothing listens on (bound, then closed again)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def current(engine: Engine, row: StagedOrder) -> StagedOrder:
    """The staged order as the database has it now."""
    found = engine.staged.get(row.id)
    assert found is not None
    return found
