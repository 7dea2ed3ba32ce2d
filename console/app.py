"""The PutDesk Textual app: wiring only — engine worker, global keys, screens.

The engine runs on the App (not on a screen) in its own worker group, so no screen
change or exclusive worker elsewhere can cancel it. Halt and resume are priority
bindings: they work over modals and the command palette.

Read-only (PUTDESK_READ_ONLY, `putdesk --read-only`): a second operator watching. Order
keys are hidden and refused with READ_ONLY_NOTICE, resume too; ctrl+k still halts (a
watcher must be able to stop trading). The engine itself refuses orders and runs no
scheduler, exits or reconciliation in that process.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from console.messages import EngineFailed, EngineUpdated
from core.actor import whoami
from screens.base import READ_ONLY_NOTICE
from screens.confirm import ConfirmScreen
from screens.overview import OverviewScreen
from widgets.format import ny_time

if TYPE_CHECKING:
    from core.config import Settings  # pydantic: not before the first frame
    from core.engine import Engine, EngineState
    from screens.help import HelpSection

EngineFactory = Callable[[], "Engine"]


def _opener(mode: str) -> Callable[[], Screen[None]]:
    return lambda: _screen_class(mode)()

#: mode -> (module in screens/, class): imported when first opened.
SCREENS: dict[str, tuple[str, str]] = {
    "overview": ("overview", "OverviewScreen"), "candidates": ("candidates", "CandidatesScreen"),
    "positions": ("positions", "PositionsScreen"), "orders": ("orders", "OrdersScreen"),
    "rolls": ("rolls", "RollsScreen"), "margin": ("margin", "MarginScreen"),
    "stress": ("stress", "StressScreen"), "log": ("log", "LogScreen"),
    "journal": ("performance", "PerformanceScreen"),
}
#: Screens by key: f1 and 1, ..., f10 and 0 (number keys for terminals without F-keys;
#: f5 is refresh, so 5 is free). The footer shows one "g Screens" menu instead: at 80
#: columns it has room for the screen's own keys, the halt and the help.
SCREEN_KEYS = Binding.Group("screens")
SCREEN_ORDER = ((1, "overview", "Overview"), (2, "candidates", "Candidates"),
                (3, "positions", "Positions"), (4, "orders", "Orders"), (6, "rolls", "Rolls"),
                (7, "margin", "Margin"), (8, "stress", "Stress"), (9, "log", "Log"),
                (10, "journal", "Journal"))
#: App actions a read-only console refuses (and hides).
ORDER_ACTIONS = frozenset({"resume"})
#: What works on the start-up screen, before the settings are read.
STARTUP_ACTIONS = frozenset({"halt", "quit"})


class StartupScreen(Screen[None]):
    """The first frame while the settings are read: the header, what is happening, and
    the footer (halt and quit)."""

    def compose(self) -> ComposeResult:
        from textual.widgets import Footer, Header, Static

        yield Header(show_clock=False)
        yield Static(" Starting: reading the settings…", id="startup")
        yield Footer()


class PutDeskApp(App[None]):
    TITLE = "PutDesk"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("ctrl+k", "halt", "Halt trading", priority=True, id="halt",
                tooltip="Halt all trading immediately (persisted; every PutDesk process)"),
        # In a text field too: see on_event.
        Binding("question_mark", "help", "Help", id="help",
                tooltip="Every key of every screen, and the command line"),
        Binding("ctrl+r", "resume", "Resume", priority=True, id="resume",
                tooltip="Resume trading after a halt (asks for confirmation)"),
        Binding("f5", "refresh", "Refresh", id="refresh",
                tooltip="Refresh account health from the broker now"),
        Binding("g", "screens_menu", "Screens", id="screens-menu",
                tooltip="Go to a screen (or 1-4, 6-9, 0; f1-f4, f6-f10)"),
        *(Binding(f"f{n},{n % 10}", f"switch_mode('{mode}')", name, id=f"screen-{mode}",
                  group=SCREEN_KEYS, show=False)
          for n, mode, name in SCREEN_ORDER),
        # In a text field digits and letters type; Esc leaves the field, so that the
        # number keys and g work again (a screen's own Esc, e.g. Back, comes first).
        Binding("escape", "leave_field", "Leave the field", id="leave-field", show=False),
        Binding("ctrl+a", "acknowledge", "Ack", id="acknowledge", priority=True, show=False,
                tooltip="Acknowledge EMERGENCY notifications (stops their repeats)"),
    ]
    # Screens other than the first are imported when first opened: the charts pull in
    # plotext, and the operator should see the console before any of that loads.
    MODES = {"overview": OverviewScreen, "startup": StartupScreen,
             **{mode: _opener(mode) for mode in SCREENS if mode != "overview"}}
    DEFAULT_MODE = "overview"

    engine_state: reactive[EngineState | None] = reactive(None, init=False)
    engine_failure: reactive[str] = reactive("", init=False)

    def __init__(
        self,
        settings: Settings | None = None,
        scenario: Path | None = None,
        engine_factory: EngineFactory | None = None,
        install_signal_handlers: bool = True,
        actor: Callable[[str], str] = whoami,
        settings_loader: Callable[[], Settings] | None = None,
    ) -> None:
        """`settings`, or `settings_loader` to read and validate them after the first
        frame (pydantic and the validation cost ~0.3 s the operator would otherwise stare
        at a blank terminal for). Until they are read a start-up screen shows, with no
        keys but the halt (which says the engine is not running yet) and quit; a bad
        setting ends the app with `settings_error` set (the CLI exits 2 with it)."""
        if settings is None and settings_loader is None:
            raise ValueError("PutDeskApp needs settings or a settings_loader")
        if settings is None:
            self.DEFAULT_MODE = "startup"  # type: ignore[misc]  # this app starts there
        super().__init__()
        self.read_only = True  # until the settings say otherwise: no order key shows early
        self.settings_error = ""
        self._loader = settings_loader
        self._scenario = scenario
        self._engine_factory = engine_factory
        self._install_signals = install_signal_handlers
        self._actor = actor
        self.engine: Engine | None = None
        if settings is not None:
            self._use(settings)

    def _use(self, settings: Settings) -> None:
        self.settings = settings
        self.read_only = settings.app.read_only
        if self.read_only:
            self.title = "PutDesk · READ-ONLY"
        scenario = self._scenario
        self._factory = self._engine_factory or (lambda: _build_engine(settings, scenario))

    @property
    def process_kind(self) -> str:
        return "read-only console" if self.read_only else "console"

    def who(self) -> str:
        return self._actor(self.process_kind)

    def _fatal_error(self) -> None:
        """Textual's crash report with local variables left out: a frame's locals can hold
        settings with secrets (passwords, API keys), and the report is printed to the
        terminal. The traceback itself stays, for the bug report."""
        import rich
        from rich.segment import Segments
        from rich.traceback import Traceback

        self.bell()
        report = Traceback(show_locals=False, width=None, suppress=[rich])
        self._exit_renderables.append(Segments(self.console.render(report,
                                                                   self.console.options)))
        self._close_messages_no_wait()

    def on_mount(self) -> None:
        # After the first frame: building the engine imports SQLAlchemy, numpy and
        # pandas, and the operator should see the console before that work starts.
        if self._loader is not None and not hasattr(self, "settings"):
            self.call_after_refresh(self.load_settings)
        else:
            self.call_after_refresh(self.start_engine)

    @work(group="engine", exclusive=True, exit_on_error=False, name="settings")
    async def load_settings(self) -> None:
        assert self._loader is not None
        try:
            settings = await asyncio.to_thread(self._loader)
        except Exception as exc:  # ConfigError, an unwritable log: named by the loader
            self.settings_error = str(exc)
            self.exit(return_code=2)
            return
        self._use(settings)
        await self.switch_mode("overview")
        await self.remove_mode("startup")
        self.refresh_bindings()
        self.call_after_refresh(self.start_engine)

    @property
    def settings_loaded(self) -> bool:
        return hasattr(self, "settings")

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
        engine.identify(self.process_kind)
        engine.add_listener(self._forward)
        if self._install_signals:
            # A trading console halts the book when its terminal goes (SIGHUP) or it is
            # told to stop (SIGTERM); a read-only watcher only closes: its lost SSH
            # session must not stop someone else's trading.
            engine.install_signal_handlers(on_signal=self._on_signal,
                                           halt=not self.read_only)
        try:
            await engine.start()
        except Exception as exc:
            self.post_message(EngineFailed(_readable(exc)))
            return
        # The heap built so far (modules, settings, engine, calendars) lives as long as
        # the console: out of the collector's sight, so a full collection no longer walks
        # it and stalls a frame (or the halt key) for 100+ ms.
        gc.freeze()

    def _forward(self, state: EngineState) -> None:
        self.post_message(EngineUpdated(state))

    def _on_signal(self, name: str) -> None:
        # Non-zero, as a process ended by a signal should: 128 + the signal's number.
        import signal

        code = 128 + int(signal.Signals[name])
        self.exit(return_code=code, message=f"PutDesk stopped by {name}; " + (
            "the watcher closed (trading is not halted by a read-only console)."
            if self.read_only else "trading halted, working orders cancelled."))

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

    # --- read-only -------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.settings_loaded and action not in STARTUP_ACTIONS:
            return False  # the start-up screen: halt and quit only
        # False hides the binding from the footer; on_key says why when it is pressed.
        return not (self.read_only and action in ORDER_ACTIONS)

    def on_key(self, event: events.Key) -> None:
        """A read-only console's answer to an order key: the binding is disabled, so the
        key arrives here; say why instead of doing nothing."""
        if self.settings_loaded and self.read_only and event.key in self._order_keys():
            event.stop()
            self.notify(READ_ONLY_NOTICE, title="Read-only", severity="warning", markup=False)

    def _order_keys(self) -> set[str]:
        from screens.help import own_bindings

        keys: set[str] = set()
        for owner, blocked in ((type(self), ORDER_ACTIONS),
                               (type(self.screen), getattr(self.screen, "ORDER_ACTIONS", ()))):
            for binding in own_bindings(owner):
                if binding.action in blocked:
                    keys.update(k.strip() for k in binding.key.split(","))
        return keys

    # --- actions ---------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        """`?` in a text field opens help, unless the field already holds text: then it
        is a typed "?" (a search for "what?"). An empty field, or one that only takes
        numbers, has no use for a "?". (A text field takes every printable key before
        any binding, priority ones included, so this is decided here.)"""
        if (isinstance(event, events.Key) and event.key == "question_mark"
                and not event.is_forwarded and self.settings_loaded and self._help_key_in_field()):
            event.stop()
            self.action_help()
            return
        await super().on_event(event)

    def _help_key_in_field(self) -> bool:
        from textual.widgets import Input

        focused = self.focused
        return isinstance(focused, Input) and (not focused.value
                                               or focused.restrict is not None)

    def action_help(self) -> None:
        """Help; on the help screen, `?` closes it."""
        from screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
            return
        self.push_screen(HelpScreen(self.help_sections(), cli_reference(), CLI_NOTE))

    def action_leave_field(self) -> None:
        from textual.actions import SkipAction
        from textual.widgets import Input

        if not isinstance(self.focused, Input):
            raise SkipAction()
        self.screen.set_focus(None)

    def action_screens_menu(self) -> None:
        from screens.menu import ScreensMenu

        if isinstance(self.screen, ScreensMenu):
            return

        def chosen(mode: str | None) -> None:
            if mode:
                self.call_later(self.switch_mode, mode)

        keys = {mode: f"{n % 10} f{n}" for n, mode, _ in SCREEN_ORDER}
        self.push_screen(ScreensMenu([(mode, name, keys[mode])
                                      for _, mode, name in SCREEN_ORDER]), chosen)

    async def palette_scan(self) -> None:
        from textual.widgets import Button

        await self.switch_mode("candidates")
        self.screen.query_one("#scan-csv", Button).press()

    async def run_on_screen(self, mode: str, action: str) -> None:
        """A palette command: open the screen, then run its action (its own checks,
        confirmations and read-only refusal apply)."""
        await self.switch_mode(mode)
        await self.screen.run_action(action)

    def help_sections(self) -> list[HelpSection]:
        """The app's keys (with Textual's quit and palette), then the f-key screens in
        their order, then every other screen; all from BINDINGS."""
        from screens.help import HelpSection, key_text, own_bindings, screen_title, sections_for

        everywhere = [*own_bindings(type(self)),
                      Binding(self.COMMAND_PALETTE_BINDING, "command_palette",
                              "Command palette", tooltip="search screens and commands"),
                      Binding("ctrl+q", "quit", "Quit the console",
                              tooltip="does NOT halt trading")]
        app_section = HelpSection(
            "Everywhere", "ctrl+k and ctrl+r work over dialogs and the palette too.",
            tuple(b for b in everywhere if b.group is not SCREEN_KEYS),
            ORDER_ACTIONS if self.read_only else frozenset())
        screens = []
        for b in own_bindings(type(self)):
            if b.group is SCREEN_KEYS:
                mode = b.action.removeprefix("switch_mode('").removesuffix("')")
                cls = _screen_class(mode)
                screens.append((f"{screen_title(cls)} ({key_text(b.key)})", cls))
        return sections_for(app_section, screens, self.read_only)

    def action_halt(self) -> None:
        if self.engine is None:
            self.notify("The engine is not running, so there is nothing to halt here. "
                        "Use `putdesk emergency-stop` to halt every other process.",
                        severity="error", markup=False)
            return
        try:
            self.engine.halt("Manual halt from a read-only console" if self.read_only
                             else "Manual halt from the console", self._actor("console"))
        except Exception as exc:
            # halt() has already stopped this process in memory; say the rest failed.
            self.notify(f"Halted here, but NOT persisted: {exc}", title="Halt",
                        severity="error", markup=False)

    def action_resume(self) -> None:
        if self.read_only:
            self.notify(READ_ONLY_NOTICE + " (resume from a trading console)", title="Read-only",
                        severity="warning", markup=False)
            return
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
        for command in super().get_system_commands(screen):
            if command.title == "Quit":
                command = SystemCommand("Quit (does not halt)", "Close this console; "
                                        "trading is NOT halted (ctrl+k halts)", command.callback)
            yield command
        yield SystemCommand("Scan the CSV", "Candidates: scan the Barchart export in the "
                            "path field", self.palette_scan)
        if not self.read_only:
            yield SystemCommand("Send all staged orders", "Orders: re-check and send every "
                                "staged order (asks first)",
                                lambda: self.run_on_screen("orders", "execute_all"))
            yield SystemCommand("Exit all positions", "Positions: buy back every short put "
                                "(asks first)", lambda: self.run_on_screen("positions",
                                                                          "exit_all"))
            yield SystemCommand("Dry run on/off", "Orders: every step except sending",
                                lambda: self.run_on_screen("orders", "toggle_dry_run"))
        yield SystemCommand("Screens menu (g)", "Every screen with its keys",
                            self.action_screens_menu)
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
        if not self.read_only:
            yield SystemCommand("Resume trading", "Clear the halt after confirmation (ctrl+r)",
                                self.action_resume)
        yield SystemCommand("Help: every key (?)", "Keys of every screen and the command line",
                            self.action_help)


def _screen_class(mode: str) -> type[Screen[None]]:
    import importlib

    module, name = SCREENS[mode]
    cls: type[Screen[None]] = getattr(importlib.import_module(f"screens.{module}"), name)
    return cls


CLI_NOTE = ("Every command takes --json; those that read the market take --scenario FILE. "
            "Exit code 2 means bad input.")


def cli_reference() -> list[tuple[str, str]]:
    """(usage, what) for every `putdesk` command, read from the Typer app itself."""
    import typer

    from console.cli import app as cli_app

    rows: list[tuple[str, str]] = [
        ("putdesk [--read-only] [--scenario FILE]", "Open the console (read-only: watch, "
                                                    "no orders; ctrl+k still halts).")]

    def walk(command: Any, prefix: str) -> None:
        if hasattr(command, "list_commands"):
            for name in command.list_commands(None):
                walk(command.get_command(None, name), f"{prefix} {name}")
            return
        parts = [prefix]
        for p in command.params:
            if p.name in ("json_out", "scenario", "verbose"):
                continue
            meta = p.metavar or p.name.upper()
            if not p.opts[0].startswith("-"):
                name = meta + ("..." if p.nargs == -1 else "")
                parts.append(name if p.required else f"[{name}]")
            else:
                flag = max(p.opts, key=len)
                parts.append(f"[{flag}]" if getattr(p, "is_flag", False) else f"[{flag} {meta}]")
        words = " ".join((command.help or "").split())
        first = words.split(". ")[0].rstrip(".") + "."
        rows.append((" ".join(parts), first))

    walk(typer.main.get_command(cli_app), "putdesk")
    return rows


def _build_engine(settings: Settings, scenario: Path | None) -> Engine:
    import os

    from core.engine import Engine

    # A read-only console watching beside a trading one takes its own client id on the
    # paper gateway (TWS refuses an id in use); a trading console keeps
    # PUTDESK_IBKR_CLIENT_ID, so a restart reclaims its orders.
    client_id = 1000 + os.getpid() % 900 if settings.app.read_only else None
    return Engine.build(settings, scenario=scenario, client_id=client_id)


def _readable(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
