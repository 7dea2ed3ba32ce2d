"""The halt banner: impossible to miss, on every screen, whenever trading is halted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from widgets.format import ny_time
from widgets.quiet import QuietStatic

if TYPE_CHECKING:
    from core.risk.kill_switch import HaltState


class HaltBanner(QuietStatic):
    DEFAULT_CSS = """
    HaltBanner {
        height: auto;
        padding: 0 1;
        background: $error;
        color: $text;
        text-style: bold;
        display: none;
    }
    HaltBanner.-halted { display: block; }
    """

    def __init__(self, read_only: bool = False, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.read_only = read_only

    def show_state(self, halt: HaltState) -> None:
        self.set_class(halt.halted, "-halted")
        if not halt.halted:
            self.show("")
            return
        since = ny_time(halt.since, with_date=True) if halt.since else "unknown time"
        stored = "" if halt.persisted else "  [NOT PERSISTED: database unavailable]"
        self.show(
            f"TRADING HALTED — {halt.reason}\n"
            f"since {since} by {halt.by or 'unknown'}{stored}\n"
            "opening orders cancelled, closes go on · "
            + ("resume from a trading console (this one is read-only)" if self.read_only
               else "ctrl+r resumes after review")
        )
