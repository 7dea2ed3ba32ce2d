"""The engine on a scenario world, opened and connected without its loops: what the
governor, execution and monitoring tests drive directly."""

from __future__ import annotations

import pytest

from tests.core.risk.worlds import world, write
from tests.factories import make_settings, sim_engine

# Reprices every 50 ms; a generous timeout so a loaded CI machine still fills in time.
FAST = {"ORDER_REPRICE_INTERVAL_SECONDS": "0.05", "ORDER_TIMEOUT_SECONDS": "5"}


@pytest.fixture
async def desk(tmp_path):
    """make(world dict, **settings) -> an opened, connected engine (no loops)."""
    engines = []

    async def make(data=None, **overrides):
        settings = make_settings(tmp_path, **{**FAST, **overrides})
        engine = sim_engine(settings, write(tmp_path, data or world(), f"w{len(engines)}.json"))
        engines.append(engine)
        await engine.open()
        await engine.broker.connect()
        return engine

    yield make
    for engine in engines:
        await engine.stop()
