"""The PutDesk Textual app: wiring only — engine worker, global keys, screens.

The engine runs on the App (not on a screen) in its own worker group, so no screen
change or exclusive worker elsewhere can cancel it. Halt and resume are priority
bindings: they work over modals and the command palette.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from console.messages import EngineFailed, EngineUpdated
from core.actor import whoami
from core.config import Settings
from screens.confirm import ConfirmScreen
from screens.overview import OverviewScreen
from widgets.format import ny_time

if TYPE_CHECKING:
    from core.engine import Engine, EngineState

EngineFactory = Callable[[], "Engine"]


class PutDeskApp(App[None]):
    TITLE = "PutDesk"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("ctrl+k", "halt", "Halt trading", priority=True, id="halt",
                tooltip="Halt all trading immediately (persisted; every PutDesk process)"),
        Binding("ctrl+r", "resume", "Resume", priority=True, id="resume",
                tooltip="Resume trading after a halt (asks for confirmation)"),
        Binding("f1", "switch_mode('overview')", "Overview", id="screen-overview"),
        Binding("f2", "switch_mode('candidates')", "Candidates", id="screen-candidates"),
        Binding("f3", "switch_mode('positions')", "Positions", id="screen-positions"),
        Binding("f4", "switch_mode('orders')", "Orders", id="screen-orders"),
        Binding("f6", "switch_mode('rolls')", "Rolls", id="screen-rolls"),
        Binding("f7", "switch_mode('margin')", "Margin", id="screen-margin"),
        Binding("f8", "switch_mode('stress')", "Stress", id="screen-stress"),
        Binding("f9", "switch_mode('log')", "Log", id="screen-log"),
        Binding("f10", "switch_mode('journal')", "Journal", id="screen-journal"),
        Binding("ctrl+a", "acknowledge", "Ack", id="acknowledge", priority=True, show=False,
                tooltip="Acknowledge EMERGENCY notifications (stops their repeats)"),
        Binding("f5", "refresh", "Refresh", id="refresh",
                tooltip="Refresh account health from the broker now"),
    ]
    # Screens other than the first are imported when first opened: the charts pull in
    # plotext, and the operator should see the console before any of that loads.
    MODES = {"overview": OverviewScreen,
             "candidates": lambda: _screen("candidates", "CandidatesScreen"),
             "positions": lambda: _screen("positions", "PositionsScreen"),
             "orders": lambda: _screen("orders", "OrdersScreen"),
             "rolls": lambda: _screen("rolls", "RollsScreen"),
             "margin": lambda: _screen("margin", "MarginScreen"),
             "stress": lambda: _screen("stress", "StressScreen"),
             "log": lambda: _screen("log", "LogScreen"),
             "journal": lambda: _screen("performance", "PerformanceScreen")}
    DEFAULT_MODE = "overview"

    engine_state: reactive[EngineState | None] = reactive(None, init=False)
    engine_failure: reactive[str] = reactive("", init=False)

    def __init__(
        self,
        settings: Settings,
        scenario: Path | None = None,
        engine_factory: EngineFactory | None = None,
        install_signal_handlers: bool = True,
        actor: Callable[[str], str] = whoami,
    ) -> None:
        super().__init__()
        self.settings = settings
        self._factory = engine_factory or (lambda: _build_engine(settings, scenario))
        self._install_signals = install_signal_handlers
        self._actor = actor
        self.engine: Engine | None = None

    def who(self) -> str:
        return self._actor("console")

    def on_mount(self) -> None:
        # After the first frame: building the engine imports SQLAlchemy, numpy and
        # pandas, and the operator should see the console before that work starts.
        self.call_after_refresh(self.start_engine)

    @work(group="engine", exclusive=True, exit_on_error=False, name="engine-start")
    async def start_engine(self) -> None:
        try:
            # Building imports the heavy parts (SQLAlchemy, numpy, pandas calendars):
            # off the UI thread, so the first frame is not held up by them.
            engine = await asyncio.to_thread(self._factory)
        except Exception as exc:
            self.post_message(EngineFailed(_readable(exc)))
            return
        self.engine = engine
        engine.add_listener(self._forward)
        if self._install_signals:
            engine.install_signal_handlers(on_signal=self._on_signal)
        try:
            await engine.start()
        except Exception as exc:
            self.post_message(EngineFailed(_readable(exc)))

    def _forward(self, state: EngineState) -> None:
        self.post_message(EngineUpdated(state))

    def _on_signal(self, name: str) -> None:
        self.exit(message=f"PutDesk stopped by {name}; trading halted.")

    def on_engine_updated(self, message: EngineUpdated) -> None:
        previous = self.engine_state
        self.engine_state = message.state
        b = message.state.broker
        self.sub_title = f"{b.account_id or 'no account'} · {b.description}"
        if previous is not None and previous.halt.halted != message.state.halt.halted:
            if message.state.halt.halted:
                self.notify(message.state.halt.reason, title="TRADING HALTED",
                            severity="error", markup=False)
            else:
                self.notify("Trading resumed.", title="Kill switch", markup=False)

    def on_engine_failed(self, message: EngineFailed) -> None:
        self.engine_failure = message.reason
        self.notify(message.reason, title="Engine failed to start", severity="error",
                    timeout=30, markup=False)

    async def on_unmount(self) -> None:
        if self.engine is not None:
            await self.engine.stop()

    # --- actions ---------------------------------------------------------------

    def action_halt(self) -> None:
        if self.engine is None:
            self.notify("The engine is not running, so there is nothing to halt here. "
                        "Use `putdesk emergency-stop` to halt every other process.",
                        severity="error", markup=False)
            return
        try:
            self.engine.halt("Manual halt from the console", self._actor("console"))
        except Exception as exc:
            # halt() has already stopped this process in memory; say the rest failed.
            self.notify(f"Halted here, but NOT persisted: {exc}", title="Halt",
                        severity="error", markup=False)

    def action_resume(self) -> None:
        engine = self.engine
        if engine is None:
            return
        halt = engine.kill_switch.state
        if not halt.halted:
            self.notify("Trading is not halted.", markup=False)
            return

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                try:
                    engine.resume(self._actor("console"))
                except Exception as exc:
                    self.notify(f"Resume failed: {exc}", severity="error", markup=False)

        self.push_screen(
            ConfirmScreen(
                "Resume trading?",
                f"Halted since {ny_time(halt.since, with_date=True)} by {halt.by}:\n"
                f"  {halt.reason}\n\nNew orders will be allowed again.",
                confirm_label="Resume trading",
            ),
            answered,
        )

    def action_acknowledge(self) -> None:
        if self.engine is None:
            return
        done = self.engine.notifier.acknowledge()
        self.notify(f"{done} emergency notification(s) acknowledged" if done else
                    "No emergency notifications to acknowledge.", markup=False)

    async def action_refresh(self) -> None:
        if self.engine is not None:
            await self.engine.refresh_account()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Screen: Overview (f1)", "Account, broker, market and kill switch",
                            lambda: self.switch_mode("overview"))
        yield SystemCommand("Screen: Candidates (f2)",
                            "Scan a Barchart CSV or the API; accepted and rejected candidates",
                            lambda: self.switch_mode("candidates"))
        yield SystemCommand("Screen: Positions (f3)",
                            "Short puts with greeks, drop from entry, P&L and alerts",
                            lambda: self.switch_mode("positions"))
        yield SystemCommand("Screen: Rolls (f6)", "Roll proposals: approve or reject",
                            lambda: self.switch_mode("rolls"))
        yield SystemCommand("Screen: Margin (f7)",
                            "Margin health gauge, account figures, breakers, equity history",
                            lambda: self.switch_mode("margin"))
        yield SystemCommand("Screen: Orders (f4)",
                            "Staged orders: send now, cancel, dry run, reconcile",
                            lambda: self.switch_mode("orders"))
        yield SystemCommand("Screen: Stress (f8)",
                            "Stress scenarios, margin-call flag, P&L across moves",
                            lambda: self.switch_mode("stress"))
        yield SystemCommand("Screen: Log (f9)", "The audit trail, filtered",
                            lambda: self.switch_mode("log"))
        yield SystemCommand("Screen: Journal (f10)",
                            "Closed-trade statistics, P&L by bucket, equity curve",
                            lambda: self.switch_mode("journal"))
        yield SystemCommand("Halt trading", "Kill switch: halt now (ctrl+k)", self.action_halt)
        yield SystemCommand("Resume trading", "Clear the halt after confirmation (ctrl+r)",
                            self.action_resume)


def _screen(module: str, name: str) -> Screen[None]:
    import importlib

    screen: Screen[None] = getattr(importlib.import_module(f"screens.{module}"), name)()
    return screen


def _build_engine(settings: Settings, scenario: Path | None) -> Engine:
    from core.engine import Engine

    return Engine.build(settings, scenario=scenario)


def _readable(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
