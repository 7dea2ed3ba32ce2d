"""Fixtures of the gateway's tests: a simulator, the TWS server on it, ib_async's IB
connected to it, and a guard that fails a test when ib_async logged a decode problem."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from ib_async import IB

from core.broker.scenario import demo_scenario_path, load_scenario
from core.broker.sim import SimBroker
from core.clock import ManualClock
from core.paper import TwsPeer

# --- the decode-error guard --------------------------------------------------------------

#: ib_async messages that only appear when a frame was misread or misrouted.
DECODE_SYMPTOMS = ("Error handling fields", "Error for ", "No order found", "Unknown reqId",
                   "malformed value", "request timed out")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def ib_async_decode_guard() -> Iterator[_Capture]:
    capture = _Capture()
    logger = logging.getLogger("ib_async")
    logger.addHandler(capture)
    try:
        yield capture
    finally:
        logger.removeHandler(capture)
    bad = [r for r in capture.records
           if r.exc_info or r.name == "ib_async.Decoder"
           or any(s in r.getMessage() for s in DECODE_SYMPTOMS)]
    if bad:
        pytest.fail("ib_async logged decode problems:\n" + "\n".join(
            f"{r.name}: {r.getMessage()[:300]}" for r in bad))


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def sim() -> SimBroker:
    world = load_scenario(demo_scenario_path())
    sim = SimBroker(world, clock=ManualClock(world.now))
    # The market calendar loads lazily (about a second, once per process): load it here
    # so no test's timing includes it.
    sim.calendar.options_trading(world.now, "AAPL")
    return sim


@pytest.fixture(params=[178])
async def peer(request: pytest.FixtureRequest, sim: SimBroker) -> AsyncIterator[TwsPeer]:
    p = TwsPeer(sim, server_version=request.param)
    await p.start()
    yield p
    await p.stop()
    assert p.failures == []



@pytest.fixture
async def ib(peer: TwsPeer) -> AsyncIterator[IB]:
    ib = IB()
    await ib.connectAsync("127.0.0.1", peer.port, clientId=1, timeout=4)
    yield ib
    ib.disconnect()
