"""DeskScreen: every screen shows the header, the halt banner, the status line and the
footer, and follows the engine's state without polling."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header

from widgets.halt_banner import HaltBanner
from widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from core.config import Settings
    from core.engine import Engine, EngineState


class DeskApp(Protocol):
    """What screens may use of the app (screens must not import console/)."""

    settings: Settings
    engine: Engine | None
    engine_state: EngineState | None
    engine_failure: str

    def who(self) -> str:
        """The operator, for the audit trail (user@host, pid, terminal)."""
        ...


class DeskScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield HaltBanner()
        yield StatusBar()
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> ComposeResult:
        yield from ()

    @property
    def desk(self) -> DeskApp:
        return cast(DeskApp, self.app)

    def on_mount(self) -> None:
        self.watch(self.app, "engine_state", self._engine_state_changed)
        self.watch(self.app, "engine_failure", self._engine_failure_changed)

    def _engine_failure_changed(self, failure: str) -> None:
        self.query_one(StatusBar).show_state(self.desk.engine_state, failure)

    def _engine_state_changed(self, state: EngineState | None) -> None:
        self.query_one(StatusBar).show_state(state, self.desk.engine_failure)
        if state is not None:
            self.query_one(HaltBanner).show_state(state.halt)
            self.show_engine_state(state)

    def show_engine_state(self, state: EngineState) -> None:
        """Subclasses render their body from the new state."""
