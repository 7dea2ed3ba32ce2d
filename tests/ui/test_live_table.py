"""LiveTable's widths: the last column takes the free width (beside a vertical
scrollbar too), and a figure the view's edge would cut is blank, never shown in part."""

from __future__ import annotations

from textual.app import App, ComposeResult

from widgets.live_table import LiveTable

COLUMNS = (("price", "Price", 8), ("pnl", "P&L", 8), ("alerts", "Alerts", 10))
ALERT = "Delta elevated: KO delta=-0.35 (>0.30, thesis weakening)"


class TableApp(App[None]):
    def __init__(self, rows: int, fixed: int = 0) -> None:
        super().__init__()
        self.rows = rows
        self.fixed = fixed

    def compose(self) -> ComposeResult:
        table: LiveTable[str] = LiveTable(COLUMNS, lambda k: ("12.50", "-$1,234", ALERT),
                                          fixed_columns=self.fixed)
        table.styles.height = 8
        yield table

    def on_mount(self) -> None:
        self.query_one(LiveTable).set_rows((str(i), str(i)) for i in range(self.rows))


async def test_the_last_column_takes_the_free_width():
    app = TableApp(3)
    async with app.run_test(size=(100, 12)) as pilot:
        await pilot.pause()
        line = app.query_one(LiveTable).render_line(1).text
    assert ALERT in line and "…" not in line


async def test_beside_a_scrollbar_the_cut_text_still_shows_its_ellipsis():
    app = TableApp(40)  # more rows than lines: a vertical scrollbar
    async with app.run_test(size=(50, 12)) as pilot:
        await pilot.pause()
        table = app.query_one(LiveTable)
        assert table.show_vertical_scrollbar
        line = table.render_line(1).text
        assert len(line) == table.size.width - 2  # the scrollbar's two columns left free
    assert line.rstrip().endswith("…")


async def test_a_figure_the_edge_would_cut_is_blank():
    app = TableApp(3)
    async with app.run_test(size=(16, 12)) as pilot:  # "Price" whole, "P&L" would be cut
        await pilot.pause()
        table = app.query_one(LiveTable)
        header, row = table.render_line(0).text, table.render_line(1).text
    assert "12.50" in row and "$" not in row and "-" not in row
    assert "Price" in header and "P" not in header.replace("Price", "")


async def test_fixed_columns_stay_when_the_table_scrolls_sideways():
    app = TableApp(3, fixed=1)
    async with app.run_test(size=(24, 12)) as pilot:
        await pilot.pause()
        table = app.query_one(LiveTable)
        table.scroll_to(x=10, animate=False, immediate=True)
        await pilot.pause()
        row = table.render_line(1).text
    # The price stays; P&L (10 wide) scrolled away whole; the alert text follows.
    assert row.startswith(" 12.50 ") and "$" not in row and " Delta" in row
