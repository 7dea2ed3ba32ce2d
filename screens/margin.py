"""Margin health: the ExcessLiquidity gauge with its 10%/20% bands, account figures,
the loss breakers, when health was last checked, and equity / ExcessLiquidity history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Container, Vertical, VerticalScroll
from textual.widgets import Static
from textual_plotext import PlotextPlot

from core.clock import new_york
from screens.base import DeskScreen
from widgets.chart import SERIES, date_axis, legend, money_axis
from widgets.check_list import status_text
from widgets.format import money, ny_time, pct
from widgets.margin_gauge import MarginGauge
from widgets.palette import BOLD_RED, BOLD_YELLOW

if TYPE_CHECKING:
    from core.db.tables import EquitySnapshot
    from core.engine import EngineState

#: ExcessLiquidity readings are drawn as a line once they span this share of the axis.
EXCESS_MIN_SPAN = 0.05


class MarginScreen(DeskScreen):
    SCREEN_NAME = "Margin"
    HELP_NOTE = ("ExcessLiquidity / NLV against the 10% (reject) and 20% (warn) bands, margin "
                 "utilisation, account figures, the loss breakers and the equity history. "
                 "↑↓ scroll on a short terminal; f5 checks the account now.")
    DEFAULT_CSS = """
    MarginScreen #body { height: 1fr; }
    MarginScreen #top { height: auto; layout: horizontal; }
    MarginScreen.-narrow #top { layout: vertical; }
    MarginScreen .panel { border: round $primary; padding: 0 1; height: auto; }
    MarginScreen #gauge-panel { width: 60; }
    MarginScreen #figures { width: 1fr; }
    MarginScreen.-narrow #gauge-panel, MarginScreen.-narrow #figures { width: 100%; }
    MarginScreen #history { height: 1fr; min-height: 12; border: round $primary; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._plotted_at: datetime | None = None

    def compose_body(self) -> ComposeResult:
        risk = self.desk.settings.risk
        # Scrollable (and focused): a short terminal reaches the history by keys.
        with VerticalScroll(id="body"):
            with Container(id="top"):
                with Vertical(id="gauge-panel", classes="panel"):
                    yield MarginGauge(risk.excess_liquidity_reject_pct,
                                      risk.excess_liquidity_warn_pct,
                                      risk.max_margin_utilization, id="gauge")
                    yield Static("", id="checked")
                yield Static("Waiting for the first health check…", id="figures",
                             classes="panel")
            yield Static("", id="breakers", classes="panel")
            yield PlotextPlot(id="history")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#gauge-panel").border_title = "Margin health"
        self.query_one("#figures").border_title = "Account"
        self.query_one("#breakers").border_title = "Loss breakers"
        self.query_one("#history").border_title = "Equity and ExcessLiquidity history"
        if self.desk.engine_state is not None:
            self.show_engine_state(self.desk.engine_state)

    def show_engine_state(self, state: EngineState) -> None:
        a = state.account
        gauge = self.query_one(MarginGauge)
        gauge.values = (state.excess_liquidity_ratio, a.margin_utilization if a else None)
        self.query_one("#checked", Static).update(self._checked(state))
        self.query_one("#figures", Static).update(self._figures(state))
        self.query_one("#breakers", Static).update(self._breakers(state))
        if state.account_checked_at is not None and state.account_checked_at != self._plotted_at:
            self._plotted_at = state.account_checked_at
            self.load_history()

    def _checked(self, state: EngineState) -> Text:
        text = Text()
        if state.account_checked_at is None:
            text.append("Not checked yet", style=BOLD_YELLOW)
            return text
        age = (state.now - state.account_checked_at).total_seconds() / 60
        interval = self.desk.settings.risk.account_health_interval_minutes
        text.append(f"Checked {ny_time(state.account_checked_at)}, {age:.0f} min ago "
                    f"(every {interval:g} min; f5 now)", style="dim")
        if state.account_error:
            text.append(f"\nLast attempt failed: {state.account_error}", style=BOLD_RED)
        return text

    def _figures(self, state: EngineState) -> Table | str:
        a = state.account
        if a is None:
            return state.account_error or "No account data yet."
        pairs = 2 if self.has_class("-narrow") else 1  # narrow: two figures a line
        table = Table.grid(padding=(0, 2))
        for _ in range(pairs):
            table.add_column(style="dim", no_wrap=True)
            table.add_column(justify="right", no_wrap=True)
        cells: list[str] = []
        for label, value in (("Net liquidation", money(a.net_liquidation)),
                             ("Equity with loan", money(a.equity_with_loan)),
                             ("Excess liquidity", money(a.excess_liquidity)),
                             ("Available funds", money(a.available_funds)),
                             ("Initial margin", money(a.init_margin_req)),
                             ("Maintenance margin", money(a.maint_margin_req)),
                             ("Cash", money(a.total_cash)),
                             ("Excess liq. / NLV", pct(state.excess_liquidity_ratio)),
                             ("Margin utilisation", pct(a.margin_utilization))):
            cells += [label, value]
            if len(cells) == 2 * pairs:
                table.add_row(*cells)
                cells = []
        if cells:
            table.add_row(*cells)
        return table

    def _breakers(self, state: EngineState) -> Table | str:
        from core.risk.breakers import evaluate

        health = state.health
        if health is None:
            return "No equity baselines yet."
        table = Table.grid(padding=(0, 1))
        table.add_column(no_wrap=True, min_width=6)
        table.add_column(overflow="fold")  # the limit is at the end: wrap, never cut
        for check in evaluate(health.net_liquidation, health.baselines,
                              self.desk.settings.risk):
            table.add_row(status_text(check.status), Text(check.reason))
        return table

    @work(group="margin-history", exclusive=True, exit_on_error=False)
    async def load_history(self) -> None:
        engine = self.desk.engine
        if engine is None:
            return
        self.plot_history(await engine.equity_history())

    def plot_history(self, rows: Sequence[EquitySnapshot]) -> None:
        """Net liquidation (left axis) and ExcessLiquidity (right) over time, x in days
        with dated labels. ExcessLiquidity is recorded only by the broker's health checks
        (a scenario's or an older history has net liquidation alone), so its readings may
        cover the last minutes of a weeks-long axis: squeezed there they drew as one
        vertical line. It is drawn as a line once its readings span a readable part of
        the axis; until then the legend gives the latest figure and since when."""
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        if len(rows) < 2:
            plot.border_subtitle = ""
            plt.title("Not enough history yet")
            plot.refresh()
            return
        start = rows[0].ts
        xs = [(r.ts - start).total_seconds() / 86400 for r in rows]
        nlv = [r.net_liquidation for r in rows]
        (nlv_rgb, _), (excess_rgb, _) = SERIES
        plt.plot(xs, nlv, marker="braille", color=nlv_rgb)
        money_axis(plt, nlv, "left")
        excess = [(x, r) for x, r in zip(xs, rows, strict=True)
                  if r.excess_liquidity is not None]
        names = ["Net liquidation (left axis)"]
        if len(excess) >= 2 and excess[-1][0] - excess[0][0] >= EXCESS_MIN_SPAN * xs[-1]:
            values = [r.excess_liquidity for _x, r in excess if r.excess_liquidity is not None]
            plt.plot([x for x, _r in excess], values, marker="braille", yside="right",
                     color=excess_rgb)
            money_axis(plt, values, "right")
            names.append("Excess liquidity (right axis)")
        elif excess:
            first, last = excess[0][1], excess[-1][1]
            names.append(f"Excess liquidity {money(last.excess_liquidity)}: readings since "
                         f"{new_york(first.ts):%b %d %H:%M} ET, too short for a line")
        date_axis(plt, xs, [r.ts for r in rows])
        plot.border_subtitle = legend(*names)
        plot.refresh()
