"""The widgets that take the engine's state several times a second: a status line that
only lays the screen out again when its height changes, and does nothing when the text
and its styles are what it already shows."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult

from widgets.quiet import QuietStatic


class One(App[None]):
    def compose(self) -> ComposeResult:
        yield QuietStatic("", id="line")


async def test_unchanged_text_does_nothing_and_a_same_height_change_skips_layout():
    app = One()
    async with app.run_test(size=(40, 10)) as pilot:
        line = app.query_one("#line", QuietStatic)
        calls: list[bool] = []
        original = line.update

        def update(content="", *, layout=True):
            calls.append(layout)
            original(content, layout=layout)

        line.update = update  # type: ignore[method-assign]
        line.show(Text("P&L $100"))
        await pilot.pause()
        calls.clear()
        line.show(Text("P&L $100"))  # the same: nothing
        assert calls == []
        line.show(Text("P&L $100", style="red"))  # colour only: repainted, no layout
        line.show(Text("P&L $250", style="red"))  # new figure, same height: no layout
        assert calls == [False, False]
        line.show(Text("x" * 70))  # two lines at 40 columns: the layout changes
        assert calls[-1] is True
