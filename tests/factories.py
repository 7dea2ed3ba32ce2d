"""Shared builders for tests: a pinned clock and an engine on the demo world."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.clock import ManualClock
from core.config import Settings, load_settings

if TYPE_CHECKING:
    from core.engine import Engine

#: The demo scenario's "now": Tuesday 2026-11-24 10:30 ET, regular session.
T0 = datetime.fromisoformat("2026-11-24T10:30:00-05:00")


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "PUTDESK_DATABASE_URL": f"sqlite:///{tmp_path}/putdesk.db",
        "PUTDESK_LOG_FILE": str(tmp_path / "putdesk.log"),
    }
    values.update(overrides)
    return load_settings(values)


def sim_engine(settings: Settings, scenario: Path | None = None,
               clock: ManualClock | None = None, busy_timeout: float = 5.0,
               broker: Any = None) -> Engine:
    """`busy_timeout`: SQLite's wait for another process's lock; `broker`: an existing
    simulator to share (two engines on one account)."""
    from core.broker.scenario import demo_scenario_path, load_scenario
    from core.broker.sim import SimBroker
    from core.db.session import Database
    from core.engine import Engine
    from core.market.calendar import default_calendar

    world = load_scenario(scenario or demo_scenario_path())
    clock = clock or ManualClock(world.now)
    db_url = settings.app.database_url
    assert db_url is not None
    broker = broker or SimBroker(world, clock=clock, calendar=default_calendar(),
                                 label=(scenario or demo_scenario_path()).name)
    return Engine(settings, broker, Database(db_url.get_secret_value(), busy_timeout), clock,
                  wall_clock=clock, equity_seed=world.equity_closes(),
                  trade_seed=world.open_trades())


async def wait_engine_started(pilot: Any) -> None:
    """Until the console's engine has started (it starts after the first frame)."""
    app = pilot.app
    for _ in range(500):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if app.engine_failure or (app.engine is not None and app.engine.state.started):
            return
    raise AssertionError("the console's engine did not start")


@contextlib.asynccontextmanager
async def engines_on_worlds(tmp_path: Path, defaults: dict[str, str]
                            ) -> AsyncIterator[Callable[..., Awaitable[Engine]]]:
    """make(world dict = the default world, **settings) -> an opened, connected engine
    on a simulator (no loops); every engine made is stopped on the way out. The `desk`
    fixtures of tests/core, tests/faults and tests/soak are this with their defaults."""
    from tests.core.risk.worlds import world, write

    engines: list[Engine] = []

    async def make(data: dict[str, Any] | None = None, **overrides: object) -> Engine:
        settings = make_settings(tmp_path, **{**defaults, **overrides})
        engine = sim_engine(settings, write(tmp_path, data or world(), f"w{len(engines)}.json"))
        engines.append(engine)
        await engine.open()
        await engine.broker.connect()
        return engine

    try:
        yield make
    finally:
        for engine in engines:
            await engine.stop()
