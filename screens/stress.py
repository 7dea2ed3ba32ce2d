"""Stress: the five scenarios (and a custom one) over the book — portfolio P&L, margin,
ExcessLiquidity after and the margin-call flag; per-position impact of the highlighted
scenario; charts of P&L by scenario and of the book across underlying moves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, VerticalScroll
from textual.widgets import Button, DataTable, Input, Static
from textual_plotext import PlotextPlot

from screens.base import DeskScreen, busy
from widgets.chart import SERIES, money_axis
from widgets.format import contract_label, greek, money, pct, pnl, price
from widgets.palette import GREEN, ON_RED, RED

if TYPE_CHECKING:
    from core.analysis.stress import StressResult

MOVES = [m / 100 for m in range(-30, 11)]


class StressScreen(DeskScreen):
    SCREEN_NAME = "Stress"
    HELP_NOTE = ("The five scenarios of spec 6.3 and a custom one (move %, IV points; tab "
                 "reaches them): P&L, margin and ExcessLiquidity after, MARGIN CALL flag; "
                 "per-position impact of the highlighted scenario; charts below (tab reaches "
                 "them on a short terminal).")
    DEFAULT_CSS = """
    StressScreen #body { height: 1fr; }
    StressScreen #custom { height: 3; padding: 0 1; }
    StressScreen #custom Input { width: 16; }
    StressScreen.-narrow #custom Input { width: 10; }
    StressScreen #custom Static { width: auto; padding: 1 1 0 1; }
    StressScreen #status { height: 1; padding: 0 1; color: $text-muted; }
    StressScreen #scenarios { height: auto; max-height: 9; }
    StressScreen #positions { height: auto; min-height: 5; }
    StressScreen #charts { height: 1fr; min-height: 14; layout: horizontal; }
    StressScreen #charts:focus { border-left: thick $accent; }
    StressScreen.-narrow #charts { height: 26; layout: vertical; }
    StressScreen PlotextPlot { width: 1fr; }
    StressScreen.-narrow PlotextPlot { width: 100%; height: 13; }
    """
    BINDINGS = [Binding("r", "run_stress", "Run", id="stress-run",
                        tooltip="Re-run every scenario on the book as it is now")]

    def __init__(self) -> None:
        super().__init__()
        self.results: list[StressResult] = []

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="body", can_focus=False):
            with Horizontal(id="custom"):
                yield Static("Custom: move %")
                yield Input("-7", id="shift", restrict=r"[-+0-9.]*", classes="custom")
                yield Static("IV change, pts")
                yield Input("5", id="iv", restrict=r"[-+0-9.]*")
                yield Button("Run", id="run", variant="primary")
            yield Static("", id="status")
            scenarios: DataTable[Any] = DataTable(id="scenarios", cursor_type="row")
            yield scenarios
            positions: DataTable[Any] = DataTable(id="positions", cursor_type="none")
            yield positions
            # Focusable, so that tab scrolls the charts into view on a short terminal.
            charts = Container(id="charts")
            charts.can_focus = True
            with charts:
                yield PlotextPlot(id="by-scenario")
                yield PlotextPlot(id="curve")

    def on_mount(self) -> None:
        scenarios = self.query_one("#scenarios", DataTable)
        # The flag that decides an action next to the P&L, and every figure whole on 80
        # columns (a cut "$30" of "$30,630" would misread).
        for key, label, width in (("name", "Scenario", 23), ("pnl", "P&L", 10),
                                  ("call", "Margin call", 11), ("el", "Excess after", 12),
                                  ("margin", "Margin after", 12), ("what", "Parameters", 60)):
            scenarios.add_column(label, width=width, key=key)
        positions = self.query_one("#positions", DataTable)
        for key, label, width in (("pos", "Position", 22), ("now", "Price now", 9),
                                  ("new", "New price", 9), ("pnl", "P&L", 9),
                                  ("delta", "New Δ", 6), ("margin", "New margin", 10)):
            positions.add_column(label, width=width, key=key)
        scenarios.border_title = "Scenarios (r re-runs)"
        scenarios.focus()  # the results first; the custom inputs are a click or tab away
        super().on_mount()
        self.action_run_stress()

    @on(Button.Pressed, "#run")
    @on(Input.Submitted)
    def _custom(self) -> None:
        self.action_run_stress()

    def _custom_values(self) -> tuple[float, float] | None:
        try:
            shift = float(self.query_one("#shift", Input).value) / 100
            iv = float(self.query_one("#iv", Input).value) / 100
        except ValueError:
            self.notify("Custom move and IV change must be numbers (e.g. -7 and 5).",
                        severity="error", markup=False)
            return None
        if not -0.95 <= shift <= 1.0 or not -0.5 <= iv <= 2.0:
            self.notify("Custom move must be -95..100 % and IV change -50..200 points.",
                        severity="error", markup=False)
            return None
        return shift, iv

    @work(group="stress", exclusive=True, exit_on_error=False)
    async def action_run_stress(self) -> None:
        from core.analysis.stress import PortfolioStressTest, Scenario

        engine = self.desk.engine
        if engine is None:
            return
        custom = self._custom_values()
        status = self.query_one("#status", Static)
        status.update("Running the scenarios on the book as it is now…")
        try:
            async with busy(self.query_one("#scenarios", DataTable)):
                book = await engine.stress_book()
        except Exception as exc:
            status.update(Text(f"Stress test unavailable: {exc}", style="bold"))
            self.notify(f"Stress test unavailable: {exc}", severity="error", markup=False)
            return
        test = PortfolioStressTest(book, self.desk.settings.stress)
        for note in (*book.notes, *test.notes):
            self.notify(note, title="Stress test assumes", severity="warning", markup=False)
        results = test.run_all_scenarios()
        if custom is not None:
            shift, iv = custom
            results.append(test.run_scenario(Scenario(
                "custom", shift, iv, description=f"all underlyings {shift:+.0%}, "
                f"IV {iv * 100:+.0f} pts", label=f"Custom {shift:+.0%}")))
        self.results = results
        status.update(f"{len(book.lines)} positions, VIX {book.vix or '—'}, from marks at "
                      f"{book.rate:.2%} · "
                      + ("no positions: every scenario is $0" if not book.lines else
                         "↑↓ choose a scenario · r re-runs"))
        self._fill(results)
        self._charts(results, test.pnl_curve(MOVES).tolist())

    def _fill(self, results: list[StressResult]) -> None:
        table = self.query_one("#scenarios", DataTable)
        row = table.cursor_row
        table.clear()
        for r in results:
            table.add_row(Text(r.label or r.name, overflow="ellipsis", no_wrap=True),
                          Text(pnl(r.pnl), style=RED if r.pnl < 0 else GREEN),
                          Text(" MARGIN CALL ", style=ON_RED) if r.margin_call
                          else Text("no", style=GREEN),
                          money(r.excess_liquidity), money(r.margin),
                          Text(r.description, overflow="ellipsis", no_wrap=True), key=r.name)
        if results:
            table.move_cursor(row=min(row, len(results) - 1))
        self._positions(results[table.cursor_row] if results else None)

    @on(DataTable.RowHighlighted, "#scenarios")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.results):
            self._positions(self.results[event.cursor_row])

    def _positions(self, result: StressResult | None) -> None:
        table = self.query_one("#positions", DataTable)
        table.clear()
        if result is None:
            return
        table.border_title = f"Per position — {result.label or result.name}"
        for p in result.positions:
            table.add_row(contract_label(p.symbol, p.expiration, p.strike),
                          price(p.price_now), price(p.price_after),
                          Text(pnl(p.pnl), style=RED if p.pnl < 0 else ""),
                          greek(p.delta_after), money(p.margin_after))

    def _charts(self, results: list[StressResult], curve: list[float]) -> None:
        bars = self.query_one("#by-scenario", PlotextPlot)
        plt = bars.plt
        plt.clear_data()
        plt.clear_figure()
        # Short labels: plotext drops labels that collide, and not always the same one.
        short = {"market_drop_5pct": "-5%", "market_drop_10pct": "-10%",
                 "single_stock_crash": "crash", "vix_spike_35": "VIX",
                 "correlation_crisis": "crisis", "custom": "custom"}
        plt.bar([short.get(r.name, r.name[:6]) for r in results], [r.pnl for r in results],
                color="red", width=0.5)
        money_axis(plt, [0.0, *(r.pnl for r in results)])  # bars stand on zero
        plt.title("P&L by scenario")
        bars.refresh()
        line = self.query_one("#curve", PlotextPlot)
        plt = line.plt
        plt.clear_data()
        plt.clear_figure()
        plt.plot([m * 100 for m in MOVES], curve, marker="braille", color=SERIES[0][0])
        plt.hline(0.0)
        money_axis(plt, [0.0, *curve])
        ticks = [float(t) for t in range(-30, 11, 10)]
        plt.xticks(ticks, [pct(t / 100, 0, signed=t != 0) for t in ticks])
        plt.title("Book P&L across underlying moves")
        line.refresh()
