"""Keys at 80 columns: every screen by number key, F-key or the screens menu; `?` in a
text field; palette actions for the main commands; Quit says it does not halt."""

from __future__ import annotations

from textual.widgets import Input

from console.app import PutDeskApp
from screens.help import HelpScreen
from screens.menu import ScreensMenu
from tests.factories import make_settings, sim_engine, wait_engine_started

SIZE = (80, 24)


def make_app(tmp_path) -> PutDeskApp:
    settings = make_settings(tmp_path)
    return PutDeskApp(settings, engine_factory=lambda: sim_engine(settings),
                      install_signal_handlers=False, actor=lambda via: f"{via} tester")


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_number_keys_and_f_keys_reach_every_screen(tmp_path):
    """Candidates opens with the CSV path focused: digits type there, Esc leaves it."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine_started(pilot)
        for key, mode in (("2", "candidates"), ("escape", "candidates"), ("3", "positions"),
                          ("4", "orders"), ("6", "rolls"), ("7", "margin"), ("8", "stress"),
                          ("9", "log"),
                          ("0", "journal"), ("1", "overview"), ("f4", "orders"),
                          ("f10", "journal"), ("f1", "overview")):
            await pilot.press(key)
            await settle(pilot)
            assert app.current_mode == mode, key


async def test_the_footer_offers_the_screens_menu_and_it_switches(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine_started(pilot)
        footer_keys = {b.key for (_, b, enabled, _) in app.screen.active_bindings.values()
                       if b.show and enabled}
        assert "g" in footer_keys and not any(k.startswith("f1") for k in footer_keys)
        await pilot.press("g")
        await settle(pilot)
        assert isinstance(app.screen, ScreensMenu)
        await pilot.press("down", "down", "down", "down", "enter")  # Rolls, 5th
        await settle(pilot)
        assert app.current_mode == "rolls"


async def test_question_mark_helps_in_a_field_but_types_in_a_search(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine_started(pilot)
        await pilot.press("9")  # the Log: its filter is a free-text search
        await settle(pilot)
        search = app.screen.query_one("#text", Input)
        search.focus()
        await pilot.press("question_mark")  # empty: nothing to search, so help
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")  # ? closes help again
        await settle(pilot)
        assert not isinstance(app.screen, HelpScreen)
        search.focus()
        await pilot.press("w", "h", "a", "t", "question_mark")
        await settle(pilot)
        assert search.value == "what?" and not isinstance(app.screen, HelpScreen)
        await pilot.press("8")  # not a screen key inside the search either
        await settle(pilot)
        assert search.value == "what?8" and app.current_mode == "log"
        # A numbers-only field has no use for "?": help.
        search.blur()
        await pilot.press("8")
        await settle(pilot)
        shift = app.screen.query_one("#shift", Input)
        shift.focus()
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen) and shift.value == "-7"


async def test_palette_has_the_main_commands_and_quit_says_it_does_not_halt(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine_started(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert "Quit" not in commands and "Quit (does not halt)" in commands
        assert {"Scan the CSV", "Send all staged orders", "Exit all positions",
                "Dry run on/off", "Screens menu (g)"} <= set(commands)
        await commands["Dry run on/off"].callback()
        await settle(pilot)
        assert app.current_mode == "orders" and app.screen.dry_run is True
        await commands["Scan the CSV"].callback()
        for _ in range(200):
            await settle(pilot)
            if getattr(app.screen, "result", None) is not None:
                break
        assert app.current_mode == "candidates" and app.screen.result is not None


async def test_a_read_only_palette_has_no_order_commands(tmp_path):
    settings = make_settings(tmp_path, PUTDESK_READ_ONLY="true")
    app = PutDeskApp(settings, engine_factory=lambda: sim_engine(settings),
                     install_signal_handlers=False, actor=lambda via: f"{via} tester")
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine_started(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert "Scan the CSV" in titles
        assert not titles & {"Send all staged orders", "Exit all positions", "Dry run on/off"}
