"""The console on the paper gateway sees another process's fill by itself (issue 15)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from console.app import PutDeskApp
from screens.positions import PositionsScreen
from tests.core.risk.worlds import world, write
from tests.factories import make_settings, wait_engine_started
from tests.paper.gateway_proc import env_for, running

FAST = {"ORDER_REPRICE_INTERVAL_SECONDS": "0.05", "ORDER_TIMEOUT_SECONDS": "5"}
#: The issue's bound: a fill made elsewhere is on screen within this, with no key press.
WITHIN_S = 5.0


async def putdesk_async(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_the_console_shows_a_fill_made_by_putdesk_execute_elsewhere(
        tmp_path: Path) -> None:
    home = tmp_path / "data"
    scenario = write(tmp_path, world())
    env = env_for(home, PUTDESK_BROKER="paper", **FAST)
    with running(home, "--scenario", str(scenario), env=env):
        settings = make_settings(home, PUTDESK_BROKER="paper", **FAST)
        app = PutDeskApp(settings, scenario=scenario, install_signal_handlers=False,
                         actor=lambda via: f"{via} tester")
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_engine_started(pilot)
            assert app.engine is not None and app.engine.broker.connected
            await pilot.press("f3")
            screen = app.screen
            assert isinstance(screen, PositionsScreen)
            table = screen.query_one("#positions")
            assert not any("KO" in key for key in table.row_keys)
            code, out = await putdesk_async(env, "check", "KO", "68", "2026-12-31", "--stage",
                                            "--scenario", str(scenario))
            assert code == 0, out
            code, out = await putdesk_async(env, "execute", "--scenario", str(scenario))
            assert code == 0 and "FILLED" in out.upper(), out
            loop = asyncio.get_running_loop()
            filled_at = loop.time()
            while "KO 20261231 68 P" not in table.row_keys:
                assert loop.time() - filled_at < WITHIN_S, (
                    f"the fill is not on the Positions screen after {WITHIN_S} s")
                await pilot.pause(0.05)
