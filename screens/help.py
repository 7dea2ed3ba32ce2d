"""Help (`?`): every key of the app and of every screen, generated from their BINDINGS
(so it cannot go stale), and the command line's one-liners.

The screens are found by importing every module of this package; a new screen is listed
without anyone remembering to add it here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from screens.base import DeskModal, DeskScreen

#: Textual key names as the operator types them.
KEY_NAMES = {"escape": "esc", "question_mark": "?", "slash": "/", "space": "space",
             "enter": "enter", "tab": "tab", "shift+tab": "shift+tab"}

#: Keys every screen has from Textual's widgets (tables, inputs, lists, scrolling).
MOVING_AROUND: tuple[tuple[str, str], ...] = (
    ("tab / shift+tab", "next / previous field, button or table"),
    ("↑ ↓ ← →", "move in a table or a list; scroll a panel"),
    ("pgup pgdn home end", "page through a table or a panel"),
    ("enter", "open the highlighted row's detail; press the focused button; submit an input"),
    ("esc", "close a detail, a dialog or this help"),
    ("→ (in a path input)", "accept the suggested completion"),
)


def key_text(key: str) -> str:
    """`escape,n` -> `esc / n`; `ctrl+k` stays; `E` is shift+e and stays `E`."""
    return " / ".join(KEY_NAMES.get(k.strip(), k.strip()) for k in key.split(","))


def own_bindings(cls: type[object]) -> list[Binding]:
    """The bindings a PutDesk class declares, its own and those of its PutDesk bases;
    Textual's (tab, copy ...) are the Moving-around section's business."""
    seen: dict[str, Binding] = {}
    for base in reversed(cls.__mro__):
        if not base.__module__.startswith(("screens.", "console.", "widgets.")):
            continue
        raw: Sequence[BindingType] = base.__dict__.get("BINDINGS", ())
        for item in raw:
            binding = item if isinstance(item, Binding) else Binding(*item)
            seen[binding.id or binding.action] = binding  # a subclass's wins
    return list(seen.values())


def discover_screens() -> list[type[Screen[object]]]:
    """Every Screen class defined in a module of the `screens` package."""
    import screens

    found: list[type[Screen[object]]] = []
    for info in sorted(pkgutil.iter_modules(screens.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"screens.{info.name}")
        for _name, cls in inspect.getmembers(module, inspect.isclass):
            if (issubclass(cls, Screen) and cls.__module__ == module.__name__
                    and cls not in (DeskScreen, DeskModal)):  # bases, not screens
                found.append(cls)
    return found


@dataclass(frozen=True)
class HelpSection:
    title: str
    note: str
    bindings: tuple[Binding, ...]
    #: Actions hidden in a read-only console (marked so in the list).
    blocked: frozenset[str] = frozenset()


def screen_title(cls: type[object]) -> str:
    return str(getattr(cls, "SCREEN_NAME", "") or cls.__name__)


def screen_note(cls: type[object]) -> str:
    own_doc = cls.__dict__.get("__doc__") or ""  # not a base class's docstring
    note = getattr(cls, "HELP_NOTE", "") or inspect.cleandoc(own_doc).split("\n\n")[0]
    return " ".join(note.split())


def sections_for(app_section: HelpSection, first: Iterable[tuple[str, type[object]]],
                 read_only: bool) -> list[HelpSection]:
    """The app's keys, then `first` (screens with their f-key, in order), then every
    other screen of the package."""
    out = [app_section]
    listed: set[type[object]] = set()
    for title, cls in first:
        listed.add(cls)
        out.append(_section(cls, title, read_only))
    for cls in discover_screens():
        if cls not in listed:
            out.append(_section(cls, screen_title(cls), read_only))
    return out


def _section(cls: type[object], title: str, read_only: bool) -> HelpSection:
    blocked = frozenset(getattr(cls, "ORDER_ACTIONS", frozenset())) if read_only else frozenset()
    return HelpSection(title, screen_note(cls), tuple(own_bindings(cls)), blocked)


def section_table(section: HelpSection) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True, min_width=12, style="bold")
    table.add_column(overflow="fold")
    for b in section.bindings:
        what = Text(b.description or b.action.replace("_", " "))
        if b.tooltip and b.tooltip != b.description:
            what.append(f" — {b.tooltip}", style="dim")
        if b.action in section.blocked:
            what.append("  [off: read-only]", style="bold")
        table.add_row(key_text(b.key), what)
    if not section.bindings:
        table.add_row("", Text("no keys of its own", style="dim"))
    return table


class HelpScreen(DeskScreen):
    SCREEN_NAME = "Help"
    HELP_NOTE = "This list. Arrow keys and pgup/pgdn scroll it."
    DEFAULT_CSS = """
    HelpScreen #help { height: 1fr; padding: 0 1; }
    HelpScreen .title { text-style: bold; color: $accent; margin-top: 1; }
    HelpScreen .note { color: $text-muted; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close help", id="help-close")]

    def __init__(self, sections: Sequence[HelpSection],
                 cli: Sequence[tuple[str, str]] = (), cli_note: str = "") -> None:
        super().__init__()
        self.sections = list(sections)
        self.cli = list(cli)
        self.cli_note = cli_note

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text("Keys by screen. The footer shows the keys of the screen in "
                              "front; ctrl+p searches every command.", style="italic"),
                         classes="note")
            for section in self.sections:
                yield Static(section.title, classes="title", markup=False)
                if section.note:
                    yield Static(section.note, classes="note", markup=False)
                yield Static(section_table(section), classes="keys")
            yield Static("Moving around", classes="title")
            moving = Table.grid(padding=(0, 2))
            moving.add_column(no_wrap=True, min_width=12, style="bold")
            moving.add_column(overflow="fold")
            for key, what in MOVING_AROUND:
                moving.add_row(key, what)
            yield Static(moving)
            if self.cli:
                yield Static("Command line", classes="title")
                if self.cli_note:
                    yield Static(self.cli_note, classes="note", markup=False)
                lines: list[RenderableType] = []
                for usage, what in self.cli:
                    lines.append(Text(usage, style="bold"))
                    lines.append(Padding(Text(what, style="dim"), (0, 0, 0, 4)))
                yield Static(Group(*lines))

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#help", VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss()

    def text(self) -> str:
        """Everything the help lists, as plain text (for tests and for copying)."""
        from io import StringIO

        from rich.console import Console

        out = StringIO()
        console = Console(file=out, width=200, color_system=None, legacy_windows=False)
        for widget in self.query(Static):
            console.print(widget.content)
        return out.getvalue()
