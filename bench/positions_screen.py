"""Positions screen under load: every row's quote, P&L and alerts change 4 times a second,
headless at 120x40, with the product's logging on. For 200 and 1,000 positions (and
10,000 for information) it prints the worst and median time from a new engine state
posted to the app until the frame showing it has been composed *and* turned into
terminal output (headless Textual skips that last step: the bench does it, so the cost
an operator's terminal sees is counted). Then the halt key: ctrl+k pressed right behind
an update, timed until the frame with the halt banner is out.

The timed span holds no sleeps: it waits on an event set by the frame itself. The wait
until the next 250 ms tick is outside it.

    python -m bench.positions_screen [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from dataclasses import replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from bench.report import Result, ms, production_settings, report

if TYPE_CHECKING:
    from core.config import Settings
    from core.models import PositionView

HZ = 4
#: rows -> worst-frame budget (None: reported, no budget).
SIZES: dict[int, float | None] = {200: 0.050, 1000: 0.100, 10_000: None}
HALT_BUDGET = 0.100


def book(n: int, today: date) -> list[PositionView]:
    from core.broker.base import OptionContract
    from core.models import PositionView

    views = []
    for i in range(n):
        strike = 50 + i % 400
        views.append(PositionView(f"S{i:05d} P{strike}", OptionContract(
            f"S{i:05d}", today + timedelta(days=7 + i % 40), float(strike)), -1 - i % 3, 1.0,
            None, today, strike * 1.15, 0, 7 + i % 40, 0.9, 1.0, 0.95, -0.2, 0.3,
            strike * 1.1, theta=-0.03, mark_source="mid", margin=strike * 20.0,
            margin_note="what-if of closing it"))
    return views


def tick(views: list[PositionView], rng: random.Random,
         settings: Settings) -> list[PositionView]:
    from core.monitoring.positions import check_alerts

    out = []
    for v in views:
        und = (v.underlying_price or 100) * (1 + rng.gauss(0, 0.01))
        mark = max(0.01, (v.mark or 1.0) * (1 + rng.gauss(0, 0.05)))
        delta = max(-0.99, min(-0.01, (v.delta or -0.2) + rng.gauss(0, 0.03)))
        nv = replace(v, underlying_price=und, mark=mark, bid=mark - 0.05, ask=mark + 0.05,
                     delta=delta)
        out.append(replace(nv, alerts=check_alerts(nv, settings.monitoring)))
    return out


class FrameWatch:
    """Wraps the app's display step: builds the terminal output headless Textual skips,
    and resolves a waiter once a frame satisfying its condition has gone out."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.waiting: tuple[Any, asyncio.Future[float]] | None = None
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            if renderable is not None and hasattr(renderable, "render_segments"):
                renderable.render_segments(app.console)
            original(screen, renderable)
            if self.waiting is not None and renderable is not None:
                condition, future = self.waiting
                if condition() and not future.done():
                    future.set_result(time.perf_counter())
                    self.waiting = None

        app._display = display

    def expect(self, condition: Any) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting = (condition, future)
        return future


async def run(seconds: float) -> list[Result]:
    import gc

    from textual import events

    from console.app import PutDeskApp
    from console.messages import EngineUpdated
    from tests.factories import sim_engine
    from widgets.halt_banner import HaltBanner
    from widgets.live_table import LiveTable

    settings = production_settings()
    app = PutDeskApp(settings, engine_factory=lambda: sim_engine(settings),
                     install_signal_handlers=False)
    rng = random.Random(4)
    results: list[Result] = []
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
        # Only this bench publishes from here on: the demo engine's own updates would
        # interleave with the generated book.
        await engine.stop()
        gc.freeze()  # as the console does once started
        watch = FrameWatch(app)
        period = 1 / HZ
        today = date(2026, 11, 24)
        for n, budget in SIZES.items():
            views = book(n, today)
            frames: list[float] = []
            for _ in range(max(8, int(seconds * HZ * (200 / n if budget is None else 1)))):
                views = tick(views, rng, settings)
                target = replace(state, positions=tuple(views))
                done = watch.expect(lambda t=target: app.engine_state is t)
                start = time.perf_counter()
                app.post_message(EngineUpdated(target))
                frames.append(await done - start)
                await asyncio.sleep(max(0.0, period - (time.perf_counter() - start)))
            table = app.screen.query_one("#positions", LiveTable)
            assert table.row_count == n, table.row_count
            worst, median = max(frames), statistics.median(frames)
            print(f"positions screen, {n} positions at {HZ} Hz, {len(frames)} frames: worst "
                  f"{ms(worst)}, median {ms(median)}, p95 "
                  f"{ms(sorted(frames)[int(len(frames) * 0.95)])}", flush=True)
            results.append(Result(
                f"positions {n} rows @ {HZ} Hz, worst update",
                f"{ms(worst)} (median {ms(median)})",
                "info (no budget)" if budget is None else f"<= {ms(budget)}",
                None if budget is None else worst <= budget))
        # The halt key behind an update of 200 rows.
        views = book(200, today)
        halts = []
        banner = app.screen.query_one(HaltBanner)
        for _ in range(5):
            views = tick(views, rng, settings)
            done = watch.expect(lambda: banner.has_class("-halted"))
            start = time.perf_counter()
            app.post_message(EngineUpdated(replace(state, positions=tuple(views))))
            app.post_message(events.Key("ctrl+k", None))
            halts.append(await done - start)
            engine.kill_switch.resume("bench")
            await pilot.pause()
        print(f"halt key behind a 200-row update: worst {ms(max(halts))}", flush=True)
        results.append(Result("halt key (ctrl+k) during 200-row updates, to banner on screen",
                              f"{ms(max(halts))} worst of {len(halts)}",
                              f"<= {ms(HALT_BUDGET)}", max(halts) <= HALT_BUDGET))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    report(*asyncio.run(run(args.seconds)))


if __name__ == "__main__":
    main()
