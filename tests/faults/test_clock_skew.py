"""Clock skew (spec section 7, clock sync): on every connect the engine compares the
broker's clock with its own. More than a second apart: a WARNING alert (log, audit row
"clock_skew", notifier) — "Clock skew: broker time differs from local time by +2.7 s;
check NTP on this machine". A second or less: nothing. The broker cannot tell its time:
"Clock check skipped: the broker did not report its time (...)". Trading is not
stopped by a skew: it is the operator's to fix (market sessions, expiries and the open
all run on the local clock).

The simulator runs on its own clock here, shifted from the engine's; sub-second shifts
keep the arithmetic exact (IBKR reports whole seconds, which the engine reads as the
middle of that second).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pytest import LogCaptureFixture as Caplog
from pytest import MonkeyPatch

from core.broker.base import BrokerError
from core.broker.scenario import load_scenario
from core.broker.sim import SimBroker
from core.clock import ManualClock
from core.engine import Engine
from core.market.calendar import default_calendar
from tests.core.risk.worlds import world, write
from tests.factories import T0, make_settings, sim_engine
from tests.faults.conftest import FAULTS, eventually, messages, sim

Skewed = Callable[[float], Awaitable[Engine]]
SKEW_LINE = "Clock skew: broker time differs from local time by {} s; check NTP on this machine"


@pytest.fixture
async def skewed(tmp_path: Path) -> AsyncIterator[Skewed]:
    """make(broker ahead by `seconds`) -> a started engine whose clock is T0."""
    engines: list[Engine] = []

    async def make(seconds: float) -> Engine:
        path = write(tmp_path, world(), f"w{len(engines)}.json")
        broker = SimBroker(load_scenario(path), calendar=default_calendar(),
                           clock=ManualClock(T0 + timedelta(seconds=seconds)))
        settings = make_settings(tmp_path, **FAULTS)
        engine = sim_engine(settings, path, clock=ManualClock(T0), broker=broker)
        engines.append(engine)
        await engine.start()
        return engine

    yield make
    for engine in engines:
        await engine.stop()


def clock_of(engine: Engine) -> ManualClock:
    """The simulator's own clock (not the engine's)."""
    clock = sim(engine).clock
    assert isinstance(clock, ManualClock)
    return clock


@pytest.mark.parametrize(("seconds", "shown"), [(2.7, "+2.7"), (-2.3, "-2.3")])
async def test_skew_over_a_second_warns_on_connect(
        skewed: Skewed, caplog: Caplog, seconds: float, shown: str) -> None:
    engine = await skewed(seconds)
    text = SKEW_LINE.format(shown)
    assert f"WARNING: {text}" in messages(caplog)
    [audit] = engine.audit.list(kinds=["clock_skew"])
    assert (audit.severity, audit.message) == ("WARNING", text)
    assert engine.state.last_message == f"WARNING: {text}"
    assert engine.broker.connected and engine.audit.list(kinds=["reconcile"])  # not stopped
    assert not engine.kill_switch.state.halted


@pytest.mark.parametrize("seconds", [0.0, 0.4, -0.9])
async def test_skew_of_a_second_or_less_says_nothing(
        skewed: Skewed, caplog: Caplog, seconds: float) -> None:
    engine = await skewed(seconds)
    assert engine.audit.list(kinds=["clock_skew"]) == []
    assert not any("Clock skew" in m for m in messages(caplog))


async def test_checked_again_after_every_reconnect(skewed: Skewed, caplog: Caplog) -> None:
    engine = await skewed(0.2)
    assert engine.audit.list(kinds=["clock_skew"]) == []
    sim(engine).drop_connection("dropped")
    clock_of(engine).advance(timedelta(seconds=4.5))  # the machine's clock drifted
    await eventually(lambda: engine.broker.connected
                     and len(engine.audit.list(kinds=["clock_skew"])) == 1)
    assert f"WARNING: {SKEW_LINE.format('+4.7')}" in messages(caplog)


async def test_broker_that_cannot_tell_its_time_is_logged_not_fatal(
        skewed: Skewed, caplog: Caplog, monkeypatch: MonkeyPatch) -> None:
    async def no_time() -> datetime:
        raise BrokerError("reqCurrentTime timed out")

    monkeypatch.setattr(SimBroker, "current_time", lambda self: no_time())
    engine = await skewed(5.0)
    assert ("Clock check skipped: the broker did not report its time (reqCurrentTime timed "
            "out)") in messages(caplog)
    assert engine.broker.connected and engine.audit.list(kinds=["clock_skew"]) == []
