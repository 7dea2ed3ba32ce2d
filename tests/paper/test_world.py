"""The gateway's world between requests: the walk, VIX, closed hours skipped,
expirations settled at the close, and every step saved."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from core.broker.base import OptionContract
from core.clock import NEW_YORK
from core.paper.gateway import PaperGateway, open_gateway
from core.paper.state import STATE_FILE
from tests.core.risk.worlds import short_put, world, write
from tests.factories import make_settings

#: Friday 2026-11-27 is the day after Thanksgiving (an early close at 13:00); use the
#: next week: Friday 2026-12-04, a full session.
FRIDAY = "2026-12-04"


def gateway(tmp_path: Path, data: dict | None = None) -> PaperGateway:
    settings = make_settings(tmp_path, PUTDESK_BROKER="paper")
    scenario = write(tmp_path, data or world(), "world.json")
    return open_gateway(settings, scenario=scenario)


def ny(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NEW_YORK)


async def test_the_market_walks_in_session_and_vix_moves_with_it(tmp_path: Path) -> None:
    gw = gateway(tmp_path)
    await gw.sim.connect()
    try:
        before = {s: await gw.sim.underlying_price(s) for s in gw.sim.symbols()}
        vix = await gw.sim.vix()
        await gw.step()
        gw.clock.jump(gw.clock.now() + timedelta(hours=2))  # two hours of the session
        await gw.step()
        after = {s: await gw.sim.underlying_price(s) for s in gw.sim.symbols()}
        moved = [s for s in before if before[s] != after[s]]
        assert len(moved) == len(before)
        assert await gw.sim.vix() != vix
        saved = json.loads((tmp_path / STATE_FILE).read_text())
        assert saved["sim"]["vix"] == await gw.sim.vix()
        assert datetime.fromisoformat(saved["world_time"]) >= gw.clock.now() - timedelta(
            seconds=5)
    finally:
        gw.release()


async def test_closed_hours_are_skipped_and_expirations_settle_at_the_close(
        tmp_path: Path) -> None:
    expiring = short_put("KO", 60.0, expiration=FRIDAY)  # far out of the money: expires
    gw = gateway(tmp_path, world(positions=[expiring], now=f"{FRIDAY}T15:50:00-05:00"))
    try:
        held = OptionContract("KO", datetime.fromisoformat(FRIDAY).date(), 60.0)
        await gw.sim.connect()
        assert [p.contract for p in await gw.sim.positions()] == [held]
        await gw.step()
        gw.clock.jump(ny(f"{FRIDAY}T16:30:00"))  # past the close and the after-close slack
        prices = {s: await gw.sim.underlying_price(s) for s in gw.sim.symbols()}
        await gw.step()
        now = gw.clock.now().astimezone(NEW_YORK)
        # The weekend went by in one step: Monday, ten minutes before the open.
        assert now.date().isoformat() == "2026-12-07" and (now.hour, now.minute) >= (9, 20)
        assert now < ny("2026-12-07T09:30:00")
        assert await gw.sim.positions() == []  # settled at Friday's close
        # Nothing walked over the closed hours.
        assert {s: await gw.sim.underlying_price(s) for s in gw.sim.symbols()} == prices
    finally:
        gw.release()
