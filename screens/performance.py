"""Journal: closed-trade statistics (win rate, average P&L, P&L by sector, delta, DTE and
IV-rank at entry), maximum drawdown and the equity curve, from the database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from screens.base import DeskScreen
from widgets.format import money, pct

if TYPE_CHECKING:
    from core.analysis.performance import Bucket, Journal

TABLES = (("by_sector", "Sector"), ("by_delta", "Δ at entry"), ("by_dte", "DTE at entry"),
          ("by_iv_rank", "IV rank"))


class PerformanceScreen(DeskScreen):
    DEFAULT_CSS = """
    PerformanceScreen #headline { height: auto; padding: 0 1; }
    PerformanceScreen #tables { height: 12; }
    PerformanceScreen #tables DataTable { width: 1fr; }
    PerformanceScreen #equity { height: 1fr; min-height: 8; }
    """
    BINDINGS = [Binding("r", "reload", "Reload", id="journal-reload")]

    def compose_body(self) -> ComposeResult:
        yield Static("Loading the journal…", id="headline")
        with Horizontal(id="tables"):
            for key, _title in TABLES:
                table: DataTable[Any] = DataTable(id=key, cursor_type="none")
                yield table
        yield PlotextPlot(id="equity")

    def on_mount(self) -> None:
        for key, title in TABLES:
            table = self.query_one(f"#{key}", DataTable)
            for col, width in ((title, 12), ("N", 3), ("Win", 4), ("P&L", 8)):
                table.add_column(col, width=width)
            table.border_title = f"P&L by {title}"
        super().on_mount()
        self.action_reload()

    @work(group="journal", exclusive=True, exit_on_error=False)
    async def action_reload(self) -> None:
        engine = self.desk.engine
        if engine is None:
            return
        self.show_journal(await engine.journal())

    def show_journal(self, j: Journal) -> None:
        o = j.overall
        text = Text()
        text.append(f"{o.trades} closed trades", style="bold")
        text.append(f" · win rate {pct(o.win_rate, 0)} · average {money(o.average)} · total ")
        text.append(money(o.pnl), style="green" if o.pnl >= 0 else "red")
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
                              Text(money(b.pnl), style="red" if b.pnl < 0 else ""))
        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        if len(j.equity) >= 2:
            start = j.equity[0][0]
            xs = [(t - start).total_seconds() / 86400 for t, _v in j.equity]
            plt.plot(xs, [v for _t, v in j.equity], marker="braille")
            plt.xlabel("days")
            plt.title("Equity (net liquidation)")
        else:
            plt.title("Not enough equity history yet")
        plot.refresh()
