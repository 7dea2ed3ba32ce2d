"""The help screen (`?`): every binding of the app and of every screen in screens/, each
under its screen's heading, and every `putdesk` command."""

from __future__ import annotations

import re

import typer

from console.app import PutDeskApp
from console.cli import app as cli_app
from screens.help import HelpScreen, discover_screens, key_text, own_bindings, screen_title
from tests.factories import make_settings, sim_engine, wait_engine_started


def make_app(tmp_path) -> PutDeskApp:
    settings = make_settings(tmp_path)
    return PutDeskApp(settings, engine_factory=lambda: sim_engine(settings),
                      install_signal_handlers=False, actor=lambda via: f"{via} tester")


def cli_commands(command: object, prefix: str = "putdesk") -> list[str]:
    if hasattr(command, "list_commands"):
        return [name for sub in command.list_commands(None)  # type: ignore[attr-defined]
                for name in cli_commands(command.get_command(None, sub),  # type: ignore
                                         f"{prefix} {sub}")]
    return [prefix]


async def test_help_lists_every_key_of_every_screen_and_every_command(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_engine_started(pilot)
        await pilot.press("f3", "question_mark")
        await pilot.pause()
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        text = help_screen.text()

        titles = [s.title for s in help_screen.sections]
        for cls in discover_screens():  # every screen module's screens, found by import
            assert any(t.startswith(screen_title(cls)) for t in titles), cls.__name__
        starts = []
        for section in help_screen.sections:  # each heading alone on its line
            heading = re.search(rf"^{re.escape(section.title)}$", text, re.M)
            assert heading is not None, section.title
            starts.append(heading.start())
        ends = [*sorted(starts)[1:], text.index("Moving around")]
        for section, start in zip(help_screen.sections, starts, strict=True):
            body = text[start:min(e for e in ends if e > start)]
            for b in section.bindings:
                assert re.search(rf"^ *{re.escape(key_text(b.key))} +"
                                 rf"{re.escape(b.description)}", body, re.M), (section.title,
                                                                               b.key)
        for b in own_bindings(PutDeskApp):  # the app's keys, f-keys included
            assert key_text(b.key) in text and b.description in text, b.key
        for command in cli_commands(typer.main.get_command(cli_app)):
            assert re.search(rf"^{re.escape(command)}\b", text, re.M), command
        assert "putdesk [--read-only]" in text

        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
