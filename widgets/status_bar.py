"""One line under the header: trading state first (HALTED / TRADING ACTIVE, READ-ONLY),
then broker, market session and market time — in that order, so a narrow terminal cuts
the least important part. Every state is a word, never a colour alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import events

from widgets.format import hm, ny_time
from widgets.palette import BOLD_GREEN, BOLD_RED, BOLD_YELLOW, ON_GREEN, ON_RED
from widgets.quiet import QuietStatic

if TYPE_CHECKING:
    from core.engine import EngineState

#: Below this width the line drops the account id, the weekday and the session words.
NARROW = 100


class StatusBar(QuietStatic):
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        padding: 0 1;
        background: $panel;
    }
    """

    def __init__(self, read_only: bool = False, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.read_only = read_only
        self._shown: tuple[EngineState | None, str] = (None, "")

    def on_resize(self, event: events.Resize) -> None:
        self.show_state(*self._shown)

    def show_state(self, state: EngineState | None, failure: str = "") -> None:
        self._shown = (state, failure)
        narrow = self.size.width < NARROW
        text = Text(no_wrap=True, overflow="ellipsis")
        if failure:
            text.append(" ENGINE FAILED ", style=ON_RED)
            text.append(f" {failure}")
            self.show(text)
            return
        if state is None:
            text.append("Starting engine…", style="italic")
            if self.read_only:
                text.append("  ")
                text.append(" READ-ONLY ", style="bold reverse")
            self.show(text)
            return
        if state.halt.halted:
            text.append(" HALTED ", style=ON_RED)
        else:
            text.append(" TRADING ACTIVE ", style=ON_GREEN)
        if self.read_only:
            text.append(" ")
            text.append(" READ-ONLY ", style="bold reverse")
        sep = " │ " if narrow else "  │  "
        text.append(sep)
        b = state.broker
        if b.connected:
            text.append("● ", style=BOLD_GREEN)
            text.append(b.kind.upper() if narrow else f"{b.kind.upper()} {b.account_id} connected")
        else:
            text.append("○ ", style=BOLD_RED)
            text.append(f"{b.kind.upper()} DISCONNECTED", style=BOLD_RED)
        text.append(sep)
        s = state.session
        if s is not None:
            style = BOLD_GREEN if s.session == "REGULAR" else BOLD_YELLOW
            text.append(s.session if narrow else f"Market {s.session}", style=style)
            edge = (f"until {hm(s.session_close)}" if s.session == "REGULAR"
                    else f"opens {ny_time(s.next_open, with_date=True)}")
            text.append(f" {edge}" if narrow else f" ({edge.replace('until', 'closes')})")
            text.append(sep)
        text.append(ny_time(state.now, with_date=True)[4:] if narrow
                    else ny_time(state.now, with_date=True))
        self.show(text)
