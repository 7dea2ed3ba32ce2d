"""Tables of the `putdesk` command line that fit the terminal (80 columns and up).

A table declares its columns by priority. At the terminal's width the least important
are hidden first, and one dim line under the table names them; key columns (priority
0) are never hidden and never cut: every cell is no-wrap, so a figure is either whole or
not shown, never "0.…". Free text (a reason, alerts) wraps in its column while the
column can be at least TEXT_MIN wide; narrower than that, it leaves the table for a list
under it: the row's label, then each item on a line of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console, Group, JustifyMethod, RenderableType
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

#: The narrowest a free-text column wraps in; narrower, its text goes under the table.
TEXT_MIN = 30

#: A cell: markup text; a free-text column's cell may hold several items (alerts).
Cell = str | Sequence[str]


@dataclass(frozen=True)
class Column:
    header: str
    #: 0: a key column, never hidden; otherwise the higher, the sooner it is hidden.
    priority: int = 0
    justify: JustifyMethod = "right"
    #: Free text: wraps in the table, or goes under it when there is no room.
    text: bool = False


def _items(cell: Cell) -> list[str]:
    return [cell] if isinstance(cell, str) else [c for c in cell if c]


def _cell_text(cell: Cell) -> str:
    return "\n".join(_items(cell))


def _natural(cell: Cell) -> int:
    return max((Text.from_markup(line).cell_len for line in _cell_text(cell).split("\n")),
               default=0)


def _table(title: str | None, columns: Sequence[Column], rows: Sequence[Sequence[Cell]],
           shown: Sequence[int], text_width: dict[int, int] | None = None) -> Table:
    """The table of the `shown` columns; with `text_width`, text cells are placeholders of
    that width (to measure what the table needs)."""
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
              pad_edge=False)
    for i in shown:
        c = columns[i]
        t.add_column(c.header, justify=c.justify, no_wrap=not c.text, overflow="fold")
    for row in rows:
        cells = []
        for i in shown:
            if text_width is not None and i in text_width:
                cells.append("x" * min(_natural(row[i]), text_width[i]))
            else:
                cells.append(_cell_text(row[i]))
        t.add_row(*cells)
    return t


def fit(console: Console, title: str | None, columns: Sequence[Column],
        rows: Sequence[Sequence[Cell]], *, labels: Sequence[str] | None = None,
        caption: str | None = None) -> RenderableType:
    """The table at `console`'s width: what does not fit hidden (said in a dim line) or,
    for free text, listed under it by the row's label (`labels`, else its first cell)."""
    width = console.width
    shown = list(range(len(columns)))
    moved: list[int] = []
    hidden: list[int] = []
    # Hidden or moved first: the highest priority number; key columns (0) never.
    candidates = sorted((i for i, c in enumerate(columns) if c.priority > 0),
                        key=lambda i: (-columns[i].priority, -i))

    # One row of each column's widest cell measures as the whole table (cheap for an
    # audit trail of thousands of rows).
    widest = [max((row[i] for row in rows), key=_natural, default="")
              for i in range(len(columns))]

    def needed() -> int:
        texts = {i: TEXT_MIN for i in shown if columns[i].text}
        probe = _table(None, columns, [widest], shown, texts)
        # Measured unbounded (a measurement is clamped to the width it is given).
        return Measurement.get(console, console.options.update_width(1_000_000),
                               probe).maximum

    while needed() > width and candidates:
        i = candidates.pop(0)
        shown.remove(i)
        (moved if columns[i].text else hidden).append(i)
    parts: list[RenderableType] = [_table(title, columns, rows, shown)]
    if caption:
        parts.append(Text.from_markup(caption))
    for i in moved:
        # The row's label, then each item on a line of its own, wrapped under itself.
        listed: list[RenderableType] = []
        for r, row in enumerate(rows):
            items = _items(row[i])
            if items:
                name = labels[r] if labels is not None else _cell_text(row[0])
                listed.append(Padding(Text.from_markup(name), (0, 0, 0, 2)))
                listed += [Padding(Text.from_markup(item), (0, 0, 0, 4)) for item in items]
        if listed:
            parts += [Text(columns[i].header, style="bold"), *listed]
    if hidden:
        names = ", ".join(columns[i].header for i in sorted(hidden))
        parts.append(Text(f"(hidden at {width} columns: {names}; widen the terminal or use "
                          "--json)", style="dim"))
    return Group(*parts)
