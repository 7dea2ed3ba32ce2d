"""One line under the header: broker, market session, market time, trading state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from widgets.format import hm, ny_time

if TYPE_CHECKING:
    from core.engine import EngineState


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        padding: 0 1;
        background: $panel;
    }
    """

    def show_state(self, state: EngineState | None, failure: str = "") -> None:
        text = Text()
        if failure:
            text.append(" ENGINE FAILED ", style="bold reverse red")
            text.append(f" {failure}")
            self.update(text)
            return
        if state is None:
            text.append("Starting engine…", style="italic")
            self.update(text)
            return
        b = state.broker
        if b.connected:
            text.append("● ", style="bold green")
            text.append(f"{b.kind.upper()} {b.account_id} connected")
        else:
            text.append("○ ", style="bold red")
            text.append(f"{b.kind.upper()} DISCONNECTED", style="bold red")
        text.append("  │  ")
        s = state.session
        if s is not None:
            style = "bold green" if s.session == "REGULAR" else "bold yellow"
            text.append(f"Market {s.session}", style=style)
            edge = (f"closes {hm(s.session_close)}" if s.session == "REGULAR"
                    else f"opens {ny_time(s.next_open, with_date=True)}")
            text.append(f" ({edge})")
        text.append("  │  ")
        text.append(ny_time(state.now, with_date=True))
        text.append("  │  ")
        if state.halt.halted:
            text.append(" HALTED ", style="bold reverse red")
        else:
            text.append(" TRADING ACTIVE ", style="bold reverse green")
        self.update(text)
