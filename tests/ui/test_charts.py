"""The console's charts: dated x axes, money y axes, legends outside the data, and the
ExcessLiquidity history as a line over time (it drew as one vertical line when its
readings covered only the last minutes of the axis)."""

from __future__ import annotations

from datetime import timedelta

from textual_plotext import PlotextPlot

from console.app import PutDeskApp
from core.fmt import money
from tests.factories import make_settings, sim_engine, wait_engine_started

SIZE = (160, 45)


def make_app(tmp_path) -> PutDeskApp:
    settings = make_settings(tmp_path)
    return PutDeskApp(settings, engine_factory=lambda: sim_engine(settings),
                      install_signal_handlers=False, actor=lambda via: f"{via} tester")


async def margin_chart(pilot, readings: int, every: timedelta) -> tuple[str, str]:
    """The Margin screen's history after `readings` ExcessLiquidity readings, `every`
    apart up to now: the plot's text and its legend."""
    await wait_engine_started(pilot)
    engine = pilot.app.engine
    now = engine.clock.now()
    account = engine.broker.info().account_id
    for i in range(readings, 0, -1):
        engine._equity.record(now - every * i, 148_000.0 + 10 * i, "broker",
                              excess_liquidity=120_000.0 + 500 * i, account=account)
    await pilot.press("f7")
    screen = pilot.app.screen
    screen.plot_history(await engine.equity_history())
    await pilot.pause()
    plot = screen.query_one("#history", PlotextPlot)
    return str(plot.render()), str(plot.border_subtitle)


async def test_excess_liquidity_over_days_is_a_dated_line_with_money_axes(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        chart, legend = await margin_chart(pilot, 12, timedelta(days=1))
    assert "Excess liquidity (right axis)" in legend and "Net liquidation" in legend
    assert "Nov 24" in chart and "Nov 1" in chart  # dates, not days since the start
    assert money(152_000) in chart  # the left axis: net liquidation
    assert money(126_000) in chart  # the right axis: the ExcessLiquidity line's range
    assert "Excess liquidity" not in chart and "Net liquidation" not in chart  # no legend
    # on the data


async def test_excess_liquidity_of_the_last_minutes_is_named_not_squeezed(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        chart, legend = await margin_chart(pilot, 3, timedelta(minutes=5))
    assert "Excess liquidity $" in legend and "too short for a line" in legend
    assert "$120,000" not in chart  # no right axis: the series is not drawn


async def test_journal_equity_curve_has_dates_and_money(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine_started(pilot)
        await pilot.press("f10")
        for _ in range(30):
            await app.workers.wait_for_complete()
            await pilot.pause()
        chart = str(app.screen.query_one(PlotextPlot).render())
    assert "Nov 24" in chart and "$150,000" in chart
    assert "days" not in chart
