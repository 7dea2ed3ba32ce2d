"""The console as an operator uses it: Pilot flows on the demo world with a pinned clock."""

import asyncio
import time

from textual.pilot import Pilot

from console.app import PutDeskApp
from core.clock import ManualClock
from core.db.session import Database
from core.risk.kill_switch import KillSwitch
from screens.confirm import ConfirmScreen
from tests.factories import T0, make_settings, sim_engine, wait_engine_started
from widgets.halt_banner import HaltBanner


def make_app(tmp_path, **overrides) -> PutDeskApp:
    settings = make_settings(tmp_path, **overrides)
    return PutDeskApp(settings, engine_factory=lambda: sim_engine(settings),
                      install_signal_handlers=False, actor=lambda via: f"{via} tester")


def stored_halt(app: PutDeskApp):
    url = app.settings.app.database_url.get_secret_value()
    return KillSwitch(Database(url), ManualClock(T0)).sync()


async def started(pilot: Pilot) -> None:
    await wait_engine_started(pilot)
    assert pilot.app.engine is not None and pilot.app.engine.state.started


async def test_halt_key_halts_immediately_shows_banner_and_persists(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        banner = app.screen.query_one(HaltBanner)
        assert not banner.has_class("-halted")
        await pilot.press("ctrl+k")
        await pilot.pause()
        assert banner.has_class("-halted")
        assert "Manual halt from the console" in str(banner.render())
        state = stored_halt(app)
        assert state.halted and state.by == "console tester"


async def test_resume_asks_first_and_cancel_keeps_the_halt(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press("ctrl+k")
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")  # focus starts on Cancel: a stray Enter must not resume
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert stored_halt(app).halted
        await pilot.press("ctrl+r", "y")
        await pilot.pause()
        assert not stored_halt(app).halted
        assert not app.screen.query_one(HaltBanner).has_class("-halted")


async def test_halt_works_over_the_command_palette_and_modals(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press("ctrl+k")
        await pilot.pause()
        assert stored_halt(app).halted
        await pilot.press("escape")
        await pilot.press("ctrl+r")  # confirmation modal open
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("ctrl+k")  # halting again from inside the modal is harmless
        assert stored_halt(app).halted


async def test_quitting_does_not_halt(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        await pilot.press("ctrl+q")
    assert not stored_halt(app).halted


async def test_halt_from_the_cli_reaches_the_console_within_seconds(tmp_path):
    app = make_app(tmp_path, PUTDESK_KILL_SWITCH_SYNC_SECONDS=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(pilot)
        url = app.settings.app.database_url.get_secret_value()
        KillSwitch(Database(url), ManualClock(T0)).halt("halted from another SSH session", "cli")
        deadline = time.monotonic() + 5
        banner = app.screen.query_one(HaltBanner)
        while not banner.has_class("-halted") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            await pilot.pause()
        assert banner.has_class("-halted")
        assert "halted from another SSH session" in str(banner.render())


async def test_engine_failure_is_shown_not_crashed(tmp_path):
    settings = make_settings(tmp_path)

    def broken():
        raise RuntimeError("database on fire")

    app = PutDeskApp(settings, engine_factory=broken, install_signal_handlers=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_engine_started(pilot)
        assert app.engine_failure == "database on fire"
        await pilot.press("ctrl+k")  # no engine: says so instead of crashing
        await pilot.pause()
        assert app.is_running


async def test_the_halt_shows_on_every_screen_and_dialog(tmp_path):
    from console.app import SCREENS
    from screens.help import HelpScreen
    from widgets.status_bar import StatusBar

    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot)
        await pilot.press("ctrl+k")
        for mode in SCREENS:
            await app.run_action(f"switch_mode('{mode}')")
            await pilot.pause()
            assert app.screen.query_one(HaltBanner).has_class("-halted"), mode
            assert "HALTED" in str(app.screen.query_one(StatusBar).render()), mode
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert app.screen.query_one(HaltBanner).has_class("-halted")
        await pilot.press("escape", "ctrl+r")  # a dialog: the banner stays on top of it
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.query_one(HaltBanner).has_class("-halted")


def test_a_crash_report_leaves_local_variables_out(tmp_path):
    """Textual's crash report prints every frame's locals; a local can hold a secret."""
    app = make_app(tmp_path)
    app.bell = lambda: None
    app._close_messages_no_wait = lambda: None  # not running: only the report is wanted

    def explode() -> None:
        # built at run time so only the frame's locals, not its source line, hold it
        smtp_password = "-".join(["SENTINEL", "CRASH", "LOCAL"])  # noqa: F841
        raise RuntimeError("boom")

    try:
        explode()
    except RuntimeError:
        app._fatal_error()
    shown = "".join(segment.text for renderable in app._exit_renderables
                    for segment in renderable.segments)
    assert "RuntimeError" in shown and "boom" in shown and "explode" in shown
    assert "SENTINEL-CRASH-LOCAL" not in shown


# --- settings read after the first frame --------------------------------------------


async def test_the_first_frame_comes_before_the_settings_are_read(tmp_path):
    """The start-up screen paints while the settings are still being read (the loader
    waits on an event here); then the Overview and the engine follow."""
    import threading

    from console.app import StartupScreen
    from screens.overview import OverviewScreen

    settings = make_settings(tmp_path)
    release = threading.Event()

    def loader():
        release.wait(10)
        return settings

    app = PutDeskApp(settings_loader=loader, install_signal_handlers=False,
                     engine_factory=lambda: sim_engine(settings))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, StartupScreen)
        assert not app.settings_loaded and app.engine is None
        keys = {b.binding.action for b in app.active_bindings.values()
                if app.check_action(b.binding.action, ()) is not False}
        assert keys <= {"halt", "quit", "command_palette"}, keys  # no screen or order keys
        release.set()
        await wait_engine_started(pilot)
        assert isinstance(app.screen, OverviewScreen) and app.settings is settings


async def test_a_bad_setting_ends_the_console_with_exit_2_naming_it(tmp_path):
    from core.config import ConfigError, load_settings

    def loader():
        try:
            return load_settings({"PUTDESK_SIM_SEED": "abc"})
        except ConfigError as exc:
            raise RuntimeError(str(exc)) from None

    app = PutDeskApp(settings_loader=loader, install_signal_handlers=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert app.return_code == 2
    assert "PUTDESK_SIM_SEED" in app.settings_error
