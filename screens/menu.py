"""The screens menu (g): every screen with its keys, for terminals where F-keys do not
arrive (some SSH clients, tmux set-ups) and for an 80-column footer that cannot list
them all."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from screens.base import DeskModal


class ScreensMenu(DeskModal[str | None]):
    """Dismisses with the chosen mode (None: closed)."""

    SCREEN_NAME = "Screens menu (g)"
    HELP_NOTE = "Every screen with its keys: ↑↓ and Enter, or the screen's key."

    DEFAULT_CSS = """
    ScreensMenu { align: center middle; }
    ScreensMenu > Vertical { width: 44; height: auto; border: round $primary;
        background: $surface; padding: 0 1; }
    ScreensMenu OptionList { height: auto; max-height: 14; border: none; }
    """
    BINDINGS = [Binding("escape,g", "dismiss(None)", "Close", id="menu-close")]

    def __init__(self, screens: list[tuple[str, str, str]]) -> None:
        """`screens`: (mode, name, keys) in menu order."""
        super().__init__()
        self.screens = screens

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("[b]Go to screen[/b] (Enter, or the key; Esc closes)")
            yield OptionList(*(Option(f"{keys:<8} {name}", id=mode)
                               for mode, name, keys in self.screens), id="screens")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
