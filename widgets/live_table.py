"""LiveTable: a keyed table for rows that change several times a second.

Textual's DataTable keys its cell cache on one table-wide counter, so any `update_cell`
re-renders every visible cell through Rich, and a cell whose colour alone changes keeps
its old style (Rich `Text` equality ignores style). This table uses the Line API instead:

- a row is an item (any value with `==`) and a `format_row` function that turns it into
  cells; an item equal to the one shown is not touched, any other change (colour
  included) redraws that row;
- only visible rows are formatted, lazily, in `render_line`, and each drawn line is
  cached until its item, its stripe/cursor state, the width or the styles change;
- updating rows refreshes just the visible lines that changed; the virtual size (and so
  a layout) changes only when the number of rows does.

The last column takes whatever width the others leave (its own width is its minimum),
so free columns show more of its text instead of an ellipsis. `fixed_columns` stay in
view when the table scrolls sideways.

Keys: up/down/page up/page down/home/end move the cursor, enter selects (RowSelected);
a click moves the cursor, a click on the cursor's row selects it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

ItemT = TypeVar("ItemT")
Cell = Text | str
#: (key, label, width) per column; a cell is padded by one space on each side. The last
#: column's width is its minimum: it expands to the table's width.
Column = tuple[str, str, int]
PAD = 1


class LiveTable(ScrollView, Generic[ItemT], can_focus=True):
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "live-table--header", "live-table--cursor", "live-table--even-row",
    }
    DEFAULT_CSS = """
    LiveTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        &:focus {
            background-tint: $foreground 5%;
            & > .live-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .live-table--header { background-tint: $foreground 5%; }
        }
        &:dark > .live-table--even-row { background: $surface-darken-1 40%; }
        & > .live-table--header { text-style: bold; background: $panel; color: $foreground; }
        &:ansi > .live-table--header { background: ansi_bright_blue; color: ansi_default; }
        & > .live-table--even-row { background: $surface-lighten-1 50%; }
        & > .live-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select", show=False),
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "scroll_top", "Top", show=False),
        Binding("end", "scroll_bottom", "Bottom", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, always_update=False, init=False, layout=False,
                                         repaint=False)

    class RowHighlighted(Message):
        def __init__(self, table: LiveTable[Any], key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> LiveTable[Any]:
            return self.table

    class RowSelected(RowHighlighted):
        """enter (or a click) on a row."""

    def __init__(self, columns: Sequence[Column], format_row: Callable[[ItemT], Sequence[Cell]],
                 *, fixed_columns: int = 0, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns = tuple(columns)
        #: The first columns stay in view when the table scrolls sideways (what a row is).
        self.fixed_columns = fixed_columns
        self.format_row = format_row
        self._keys: list[str] = []
        self._index: dict[str, int] = {}
        self._items: dict[str, ItemT] = {}
        #: key -> (row kind, width, drawn line, its style): valid until the item or the
        #: kind changes.
        self._lines: dict[str, tuple[str, int, Strip, Style]] = {}
        self._header: tuple[int, Strip, Style] | None = None
        #: table width -> (start, end) of every column but the last.
        self._spans: dict[int, list[tuple[int, int]]] = {}
        self._row_width = sum(width + 2 * PAD for _k, _l, width in self.columns)
        self.virtual_size = Size(self._row_width, 1)

    # --- data ------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def row_keys(self) -> list[str]:
        return list(self._keys)

    def item(self, key: str) -> ItemT | None:
        return self._items.get(key)

    @property
    def cursor_key(self) -> str | None:
        return self._keys[self.cursor_row] if self._keys else None

    def set_rows(self, rows: Iterable[tuple[str, ItemT]]) -> None:
        """Show exactly these rows: rows already shown keep their place (and the cursor
        stays on its row), new ones are appended in the order given, missing ones go.
        Only visible rows whose item changed are redrawn."""
        incoming = dict(rows)
        cursor_key = self.cursor_key
        kept = [k for k in self._keys if k in incoming]
        added = [k for k in incoming if k not in self._items]
        structure = len(kept) != len(self._keys) or bool(added)
        changed: list[str] = []
        items = self._items
        for key, item in incoming.items():
            old = items.get(key)
            if old is not None and old != item:
                changed.append(key)
                self._lines.pop(key, None)
            items[key] = item
        if structure:
            for gone in [k for k in self._keys if k not in incoming]:
                del items[gone]
                self._lines.pop(gone, None)
            self._keys = kept + added
            self._index = {k: i for i, k in enumerate(self._keys)}
            self._lines.clear()  # stripes move with the rows
            if self.virtual_size.height != len(self._keys) + 1:
                self.virtual_size = Size(self._row_width, len(self._keys) + 1)
            row = self._index.get(cursor_key, self.cursor_row) if cursor_key else 0
            self.cursor_row = max(0, min(row, len(self._keys) - 1))
            self.refresh()
            return
        top = round(self.scroll_offset.y)
        visible = max(0, self.size.height - 1)
        for key in changed:
            index = self._index[key]
            if top <= index < top + visible:
                self._refresh_row(index)

    # --- cursor ----------------------------------------------------------------------

    def watch_cursor_row(self, old: int, new: int) -> None:
        for index in (old, new):
            if 0 <= index < len(self._keys):
                self._lines.pop(self._keys[index], None)
                self._refresh_row(index)
        self._scroll_cursor_into_view()
        if self._keys:
            self.post_message(self.RowHighlighted(self, self._keys[new]))

    def move_cursor(self, row: int) -> None:
        if self._keys:
            self.cursor_row = max(0, min(row, len(self._keys) - 1))

    def _scroll_cursor_into_view(self) -> None:
        rows_shown = max(1, self.size.height - 1)
        top = round(self.scroll_offset.y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + rows_shown:
            self.scroll_to(y=self.cursor_row - rows_shown + 1, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor_row - max(1, self.size.height - 1))

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + max(1, self.size.height - 1))

    def action_scroll_top(self) -> None:
        self.move_cursor(0)

    def action_scroll_bottom(self) -> None:
        self.move_cursor(len(self._keys) - 1)

    def action_select_cursor(self) -> None:
        if self._keys:
            self.post_message(self.RowSelected(self, self._keys[self.cursor_row]))

    def on_click(self, event: events.Click) -> None:
        if event.y < 1:
            return
        index = round(self.scroll_offset.y) + event.y - 1
        if 0 <= index < len(self._keys):
            if index == self.cursor_row:
                self.action_select_cursor()
            else:
                self.cursor_row = index

    # --- drawing ---------------------------------------------------------------------

    def _refresh_row(self, index: int) -> None:
        y = index - round(self.scroll_offset.y) + 1
        if 1 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()
        self._header = None

    def on_focus(self, event: events.Focus) -> None:
        self._forget_cursor_line()

    def on_blur(self, event: events.Blur) -> None:
        self._forget_cursor_line()

    def _forget_cursor_line(self) -> None:
        key = self.cursor_key
        if key is not None:
            self._lines.pop(key, None)
            self._refresh_row(self.cursor_row)

    def _widths(self, table_width: int) -> list[int]:
        """Column widths at this table width: the last one takes what is left."""
        widths = [width for _k, _l, width in self.columns]
        if widths:
            widths[-1] += max(0, table_width - self._row_width)
        return widths

    def _draw(self, cells: Sequence[Cell], style: Style, table_width: int) -> Strip:
        """One segment run per cell (padding apart), as DataTable draws them."""
        console = self.app.console
        segments: list[Segment] = []
        pad = Segment(" " * PAD, style)
        widths = self._widths(table_width)
        for width, cell in zip(widths, cells, strict=True):
            segments.append(pad)
            plain, own = (cell, "") if isinstance(cell, str) else (cell.plain, cell.style)
            length = cell_len(plain)
            cell_style = style + console.get_style(own) if own else style
            if length <= width and (isinstance(cell, str) or not cell.spans) \
                    and "\n" not in plain and "\t" not in plain:
                # The common cell: one run of one style, no Rich rendering needed.
                segments.append(Segment(plain, cell_style))
            else:
                text = cell.copy() if isinstance(cell, Text) else Text(cell)
                if length > width:
                    text.truncate(width, overflow=text.overflow or "ellipsis")
                length = text.cell_len
                # Text.render leaves out the Text's own style (its spans only).
                segments.extend(Segment(s.text, cell_style + s.style if s.style else cell_style)
                                for s in text.render(console, end=""))
            segments.append(Segment(" " * (width - length + PAD), style))
        return Strip(segments, sum(width + 2 * PAD for width in widths))

    def _window(self, strip: Strip, style: Style, scroll_x: int, width: int) -> Strip:
        """The visible part of a drawn line: the fixed columns, then the scrolled rest. A
        figure cut by the edge of the view would misread ("$20." of "$20.35", "7.2" of
        "17.25"), so a column that does not fit whole is left blank; only the last
        column, text, may be cut."""
        spans = self._spans.get(width)
        if spans is None:
            spans, start = [], 0
            for column_width in self._widths(width)[:-1]:
                spans.append((start, start + column_width + 2 * PAD))
                start += column_width + 2 * PAD
            self._spans = {width: spans}
        fixed = spans[self.fixed_columns - 1][1] if 0 < self.fixed_columns <= len(spans) else 0
        fixed = min(fixed, width)
        left, right = fixed + scroll_x, scroll_x + width
        cuts = [(max(start, left), min(end, right)) for start, end in spans[self.fixed_columns:]
                if start < left < end or start < right < end]
        parts: list[Strip] = [strip.crop(0, fixed)] if fixed else []
        at = left
        for a, b in cuts:
            parts += [strip.crop(at, a), Strip.blank(b - a, style)]
            at = b
        parts.append(strip.crop(at, right))
        return parts[0] if len(parts) == 1 else Strip.join(parts)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width  # a vertical scrollbar takes 2
        scroll_x, scroll_y = self.scroll_offset
        base = self.rich_style
        if y == 0:
            if self._header is None or self._header[0] != width:
                style = base + self.get_component_rich_style("live-table--header")
                strip = self._draw([label for _k, label, _w in self.columns], style, width)
                self._header = (width, strip.extend_cell_length(max(width, self._row_width),
                                                                 style), style)
            return self._window(self._header[1], self._header[2], scroll_x, width)
        index = scroll_y + y - 1
        if index >= len(self._keys):
            return Strip.blank(width, base)
        key = self._keys[index]
        kind = ("cursor" if index == self.cursor_row
                else "even" if index % 2 else "odd")
        cached = self._lines.get(key)
        if cached is None or cached[0] != kind or cached[1] != width:
            style = base
            if kind != "odd":
                # Cell colours stay on top of the stripe and the cursor, as in DataTable.
                style = base + self.get_component_rich_style(f"live-table--{kind}"
                                                             if kind == "cursor"
                                                             else "live-table--even-row")
            strip = self._draw(self.format_row(self._items[key]), style, width)
            strip = strip.extend_cell_length(max(width, self._row_width), style)
            cached = (kind, width, strip, style)
            self._lines[key] = cached
        return self._window(cached[2], cached[3], scroll_x, width)
