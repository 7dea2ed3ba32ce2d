"""At --speed 600 the demo world moves by itself: alerts and exit or roll proposals come
without anyone driving the market (issue 15's done-when). Bounded at 2 minutes of wall
time, waited for as events."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from core.engine import Engine
from core.paper.gateway import GatewayInfo, open_gateway, run_gateway
from tests.factories import make_settings

SPEED = 600.0
WALL_BOUND_S = 120.0
DECISIONS = {"exit", "roll_proposed"}


async def test_at_speed_600_the_demo_raises_an_alert_and_an_exit_or_roll_proposal(
        tmp_path: Path) -> None:
    settings = make_settings(tmp_path, PUTDESK_BROKER="paper")
    gateway = open_gateway(settings, speed=SPEED)
    stop = asyncio.Event()
    serving = asyncio.create_task(run_gateway(gateway, stop=stop))
    engine: Engine | None = None
    try:
        async with asyncio.timeout(30):
            while GatewayInfo.read(gateway.home) is None:  # until it listens
                await asyncio.sleep(0.01)
        engine = Engine.build(settings)
        kinds: set[str] = set()
        both = asyncio.Event()
        loop = asyncio.get_running_loop()
        record = engine.audit_event

        def audited(kind: str, *args: object, **kwargs: object) -> object:
            def note() -> None:
                kinds.add(kind)
                if "alert" in kinds and kinds & DECISIONS:
                    both.set()
            loop.call_soon_threadsafe(note)
            return record(kind, *args, **kwargs)  # type: ignore[arg-type]

        engine.audit_event = audited  # type: ignore[method-assign]
        start_world = gateway.clock.now()
        await engine.start()
        await asyncio.wait_for(both.wait(), WALL_BOUND_S)
        assert gateway.clock.now() - start_world > timedelta(minutes=5)  # it did run fast
        assert "alert" in kinds and kinds & DECISIONS
    finally:
        if engine is not None:
            await engine.stop()
        stop.set()
        await serving
