"""DeskScreen: every screen shows the header, the halt banner, the status line and the
footer, and follows the engine's state without polling.

Read-only consoles: a screen lists its order-sending actions in ORDER_ACTIONS. In a
read-only console those bindings are hidden from the footer and do not run; the app
says why when their key is pressed (and the engine refuses them anyway)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, cast

from textual import events
from textual.app import ComposeResult
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Footer, Header

from widgets.halt_banner import HaltBanner
from widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from core.config import Settings
    from core.engine import Engine, EngineState

#: What a read-only console says when an order key is pressed (core says the same:
#: core.execution.orders.READ_ONLY_REASON; a test keeps the two equal).
READ_ONLY_NOTICE = "Read-only console: orders are disabled"

#: Below this many columns screens switch to their narrow layout (class -narrow).
NARROW_WIDTH = 100


class DeskApp(Protocol):
    """What screens may use of the app (screens must not import console/)."""

    settings: Settings
    engine: Engine | None
    engine_state: EngineState | None
    engine_failure: str

    def who(self) -> str:
        """The operator, for the audit trail (user@host, pid, terminal)."""
        ...


@contextlib.asynccontextmanager
async def busy(widget: Widget, after: float = 0.3) -> AsyncIterator[None]:
    """The loading indicator over `widget` while the block runs, if it takes longer than
    `after` seconds (no flicker for the fast case; a broker round trip shows it)."""

    def show() -> None:
        widget.loading = True

    timer = widget.set_timer(after, show)
    try:
        yield
    finally:
        timer.stop()
        widget.loading = False


def refuse_in_read_only(screen: Screen[Any]) -> bool:
    """True, after saying so, when this console is read-only (for order actions)."""
    if not cast(DeskApp, screen.app).settings.app.read_only:
        return False
    screen.notify(READ_ONLY_NOTICE, title="Read-only", severity="warning", markup=False)
    return True


class DeskScreen(Screen[None]):
    #: The screen's name in the header and the help screen.
    SCREEN_NAME: ClassVar[str] = ""
    #: Actions that send, stage, cancel or decide orders: hidden and refused when read-only.
    ORDER_ACTIONS: ClassVar[frozenset[str]] = frozenset()

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield HaltBanner(read_only=self.read_only)
        yield StatusBar(read_only=self.read_only)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    @property
    def desk(self) -> DeskApp:
        return cast(DeskApp, self.app)

    @property
    def read_only(self) -> bool:
        return self.desk.settings.app.read_only

    def on_mount(self) -> None:
        # Textual also calls this base handler after a subclass's on_mount that already
        # called super(): watch once, or every engine state would render twice.
        if getattr(self, "_desk_watching", False):
            return
        self._desk_watching = True
        if self.SCREEN_NAME:
            self.title = f"{self.app.title} · {self.SCREEN_NAME}"
        self.watch(self.app, "engine_state", self._engine_state_changed)
        self.watch(self.app, "engine_failure", self._engine_failure_changed)

    def on_resize(self, event: events.Resize) -> None:
        narrow = event.size.width < NARROW_WIDTH
        if narrow != self.has_class("-narrow"):
            self.set_class(narrow, "-narrow")
            if self.desk.engine_state is not None and self.is_mounted:
                self.show_engine_state(self.desk.engine_state)  # layouts that depend on it

    def _engine_failure_changed(self, failure: str) -> None:
        self.query_one(StatusBar).show_state(self.desk.engine_state, failure)

    def _engine_state_changed(self, state: EngineState | None) -> None:
        self.query_one(StatusBar).show_state(state, self.desk.engine_failure)
        if state is not None:
            self.query_one(HaltBanner).show_state(state.halt)
            # A screen of another mode is not seen: its body catches up when it is shown
            # again (the status line and the banner are cheap when unchanged, and stay
            # current so that no stale frame shows on the switch).
            if self.visible_now:
                self._stale = False
                self.show_engine_state(state)
            else:
                self._stale = True

    @property
    def visible_now(self) -> bool:
        """On the current mode's stack: the top screen, or under a dialog."""
        return self in self.app.screen_stack

    def on_screen_resume(self) -> None:
        state = self.desk.engine_state
        if getattr(self, "_stale", False) and state is not None and self.is_mounted:
            self._stale = False
            self.show_engine_state(state)

    def show_engine_state(self, state: EngineState) -> None:
        """Subclasses render their body from the new state."""

    # --- actions ---------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.ORDER_ACTIONS and self.read_only:
            return False  # hidden, and not run: the app shows READ_ONLY_NOTICE for the key
        return self.action_state(action, parameters)

    def action_state(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """True: shown and enabled; None: shown disabled; False: hidden (check_action)."""
        return True

    def refuse_order(self) -> bool:
        """Order actions start with this: True (and the notice shown) when read-only."""
        return refuse_in_read_only(self)


ResultT = TypeVar("ResultT")


class DeskModal(ModalScreen[ResultT]):
    """A dialog over a screen. When trading is halted the halt banner stays on the top
    line, above the dialog: the halt is visible from every screen, dialogs included."""

    DEFAULT_CSS = """
    /* Over the screen's own banner (under its header line), bright instead of dimmed. */
    DeskModal > HaltBanner { dock: top; margin-top: 1; }
    """

    def on_mount(self) -> None:
        if self.query(HaltBanner):  # see DeskScreen.on_mount: this may run twice
            return
        read_only = cast(DeskApp, self.app).settings.app.read_only
        self.mount(HaltBanner(read_only=read_only))
        self.watch(self.app, "engine_state", self._halt_changed)

    def _halt_changed(self, state: EngineState | None) -> None:
        if state is not None:
            self.query_one(HaltBanner).show_state(state.halt)
