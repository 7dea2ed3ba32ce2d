"""Positions screen under load: 200 positions updating at 4 Hz (every row's quote, P&L
and alerts change each tick), headless at 120x40. Prints the worst and median time
from a new engine state to the screen having applied it and repainted.

    python -m bench.positions_screen
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.config import Settings
    from core.models import PositionView

N_POSITIONS = 200
HZ = 4
SECONDS = int(__import__("os").environ.get("BENCH_SECONDS", "10"))


def book(rng: random.Random, today: date) -> list[PositionView]:
    from core.broker.base import OptionContract
    from core.models import PositionView

    symbols = [f"S{i:03d}" for i in range(N_POSITIONS)]
    views = []
    for i, s in enumerate(symbols):
        strike = 50 + i
        views.append(PositionView(f"{s} P{strike}", OptionContract(
            s, today + timedelta(days=7 + i % 40), float(strike)), -1 - i % 3, 1.0, None,
            today, strike * 1.15, 0, 7 + i % 40, 0.9, 1.0, 0.95, -0.2, 0.3, strike * 1.1))
    return views


def tick(views: list[PositionView], rng: random.Random,
         settings: Settings) -> tuple[PositionView, ...]:
    from core.monitoring.positions import check_alerts

    out = []
    for v in views:
        und = (v.underlying_price or 100) * (1 + rng.gauss(0, 0.01))
        mark = max(0.01, (v.mark or 1.0) * (1 + rng.gauss(0, 0.05)))
        delta = max(-0.99, min(-0.01, (v.delta or -0.2) + rng.gauss(0, 0.03)))
        nv = replace(v, underlying_price=und, mark=mark, bid=mark - 0.05, ask=mark + 0.05,
                     delta=delta)
        out.append(replace(nv, alerts=check_alerts(nv, settings.monitoring)))
    return tuple(out)


async def run() -> None:
    from console.app import PutDeskApp
    from console.messages import EngineUpdated
    from core.config import load_settings
    from tests.factories import sim_engine

    tmp = Path(tempfile.mkdtemp())
    settings = load_settings({"PUTDESK_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                              "PUTDESK_LOG_FILE": str(tmp / "bench.log")})
    app = PutDeskApp(settings, engine_factory=lambda: sim_engine(settings),
                     install_signal_handlers=False)
    rng = random.Random(4)
    frames: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(500):
            await pilot.pause()
            if app.engine is not None and app.engine.state.started:
                break
        await pilot.press("f3")
        await pilot.pause()
        engine = app.engine
        assert engine is not None
        state = engine.state
        # Only this loop publishes from here on: the demo engine's own updates (its six
        # positions, once a second) would otherwise interleave with the 200.
        await engine.stop()
        views = book(rng, date(2026, 11, 24))
        period = 1 / HZ
        for _ in range(SECONDS * HZ):
            views = list(tick(views, rng, settings))
            start = time.perf_counter()
            app.post_message(EngineUpdated(replace(state, positions=tuple(views))))
            await pilot.pause()  # the message handled, the screen updated and repainted
            elapsed = time.perf_counter() - start
            frames.append(elapsed)
            await asyncio.sleep(max(0.0, period - elapsed))
        from textual.widgets import DataTable

        assert app.screen.query_one("#positions", DataTable).row_count == N_POSITIONS
    frames.sort()
    print(f"positions screen, {N_POSITIONS} positions updating at {HZ} Hz for {SECONDS} s "
          f"({len(frames)} frames): worst {frames[-1] * 1000:.1f} ms, median "
          f"{statistics.median(frames) * 1000:.1f} ms, p95 "
          f"{frames[int(len(frames) * 0.95)] * 1000:.1f} ms (budget at 4 Hz: 250 ms)")


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
