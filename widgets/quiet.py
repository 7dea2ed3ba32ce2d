"""QuietStatic: a Static for lines that are re-sent on every engine update.

`Static.update()` repaints and re-lays-out the whole screen each time, even when the text
is the one already shown. These widgets get the engine's state several times a second,
so: nothing happens when the content (style included) is unchanged, and a layout runs
only when the content's height at the current width changes."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events
from textual.widgets import Static


def _identity(content: Text | str) -> Any:
    if isinstance(content, Text):
        # Text equality ignores style: a colour-only change must still repaint.
        return (content.plain, content.style, tuple(content.spans))
    return content


class QuietStatic(Static):
    def __init__(self, content: Text | str = "", **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._identity: Any = _identity(content)
        self._height = -1

    def show(self, content: Text | str) -> None:
        identity = _identity(content)
        if identity == self._identity:
            return
        self._identity = identity
        height = self._lines(content)
        self.update(content, layout=height != self._height or height < 0)
        self._height = height

    def _lines(self, content: Text | str) -> int:
        width = self.content_size.width
        if width <= 0 or not self.is_mounted:
            return -1
        text = content if isinstance(content, Text) else Text(content)
        return len(text.wrap(self.app.console, width))

    def on_resize(self, event: events.Resize) -> None:
        self._height = -1  # the next change re-measures (the resize itself lays out)
