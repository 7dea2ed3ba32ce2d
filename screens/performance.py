"""Journal: closed-trade statistics (win rate, average P&L, P&L by sector, delta, DTE and
IV-rank at entry), maximum drawdown and the equity curve, from the database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from core.fmt import plural
from screens.base import DeskScreen, busy
from widgets.chart import SERIES, date_axis, money_axis
from widgets.format import money, pct, pnl
from widgets.palette import GREEN, RED

if TYPE_CHECKING:
    from core.analysis.performance import Bucket, Journal
    from core.engine import EngineState

TABLES = (("by_sector", "Sector"), ("by_delta", "Δ at entry"), ("by_dte", "DTE at entry"),
          ("by_iv_rank", "IV rank"))


class PerformanceScreen(DeskScreen):
    SCREEN_NAME = "Journal"
    HELP_NOTE = ("Closed trades: win rate, average and total P&L, P&L by sector, delta, DTE and "
                 "IV rank at entry, maximum drawdown and the equity curve.")
    DEFAULT_CSS = """
    PerformanceScreen #body { height: 1fr; }
    PerformanceScreen #headline { height: auto; padding: 0 1; }
    PerformanceScreen #empty { height: auto; padding: 0 1; display: none; }
    PerformanceScreen.-empty #empty { display: block; }
    PerformanceScreen.-empty #tables { display: none; }
    PerformanceScreen #tables { height: auto; grid-size: 4; }
    PerformanceScreen.-narrow #tables { grid-size: 2; }
    PerformanceScreen #tables DataTable { height: auto; max-height: 12; }
    PerformanceScreen #equity { height: 1fr; min-height: 14; }
    PerformanceScreen #equity:focus { border-left: thick $accent; }
    """
    BINDINGS = [Binding("r", "reload", "Reload", id="journal-reload")]

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="body", can_focus=False):
            yield Static("Loading the journal…", id="headline")
            yield Static(Text("No closed trades yet: the journal fills in as positions close, "
                              "expire or are assigned. The equity curve below is the "
                              "account's.", style="italic"), id="empty")
            with Grid(id="tables"):
                for key, _title in TABLES:
                    table: DataTable[Any] = DataTable(id=key, cursor_type="none")
                    yield table
            plot = PlotextPlot(id="equity")
            plot.can_focus = True  # tab scrolls the curve into view on a short terminal
            yield plot

    def on_mount(self) -> None:
        for key, title in TABLES:
            table = self.query_one(f"#{key}", DataTable)
            for col, width in ((title, 12), ("N", 3), ("Win", 4), ("P&L", 9)):
                table.add_column(col, width=width)
            table.border_title = f"P&L by {title}"
        state = self.desk.engine_state
        self._version = state.trades_version if state is not None else -1
        super().on_mount()
        self.action_reload()

    def show_engine_state(self, state: EngineState) -> None:
        # A trade closed, here or in another process (the engine's change feed).
        if state.trades_version != self._version:
            self._version = state.trades_version
            self.action_reload()

    @work(group="journal", exclusive=True, exit_on_error=False)
    async def action_reload(self) -> None:
        engine = self.desk.engine
        if engine is None:
            return
        async with busy(self.query_one("#tables")):
            journal = await engine.journal()
        self.show_journal(journal)

    def show_journal(self, j: Journal) -> None:
        o = j.overall
        self.set_class(o.trades == 0, "-empty")
        text = Text()
        text.append(plural(o.trades, "closed trade"), style="bold")
        text.append(f" · win rate {pct(o.win_rate, 0)} · average {money(o.average)} · total ")
        text.append(pnl(o.pnl), style=GREEN if o.pnl >= 0 else RED)
        text.append(f" · best {money(j.best)} · worst {money(j.worst)} · open {j.open_trades}"
                    f" · assigned {j.assigned} · rolled {j.rolled} · max drawdown "
                    f"{pct(j.max_drawdown)}")
        self.query_one("#headline", Static).update(text)
        for key, _title in TABLES:
            table = self.query_one(f"#{key}", DataTable)
            table.clear()
            buckets: dict[str, Bucket] = getattr(j, key)
            for name, b in sorted(buckets.items()):
                table.add_row(name, str(b.trades), pct(b.win_rate, 0),
                              Text(pnl(b.pnl), style=RED if b.pnl < 0 else ""))
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        if len(j.equity) >= 2:
            start = j.equity[0][0]
            xs = [(t - start).total_seconds() / 86400 for t, _v in j.equity]
            values = [v for _t, v in j.equity]
            plt.plot(xs, values, marker="braille", color=SERIES[0][0])
            money_axis(plt, values)
            date_axis(plt, xs, [t for t, _v in j.equity])
            plt.title("Equity (net liquidation)")
        else:
            plt.title("Not enough equity history yet")
        plot.refresh()
