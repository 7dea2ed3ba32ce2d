"""The engine on a scenario world, opened and connected without its loops: what the
governor, execution and monitoring tests drive directly."""

from __future__ import annotations

import pytest

from tests.factories import engines_on_worlds

# Reprices every 50 ms; a generous timeout so a loaded CI machine still fills in time.
FAST = {"ORDER_REPRICE_INTERVAL_SECONDS": "0.05", "ORDER_TIMEOUT_SECONDS": "5"}


@pytest.fixture
async def desk(tmp_path):
    """make(world dict, **settings) -> an opened, connected engine (no loops)."""
    async with engines_on_worlds(tmp_path, FAST) as make:
        yield make
