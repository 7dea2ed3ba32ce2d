"""Axes and legends for the console's plotext charts: dates on time axes ("Nov 05"),
money on money axes (core.fmt, as everywhere else), round tick steps, and a legend drawn
outside the plot (plotext draws its legend over the top-left of the data)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.text import Text

from core.clock import new_york
from widgets.format import money

#: Series colours as plotext takes them (RGB) and Rich writes them (hex), so the legend
#: outside the plot matches the lines: palette colours that survive 16-colour terminals.
SERIES = (((95, 215, 215), "#5fd7d7"),  # cyan (96)
          ((255, 215, 95), "#ffd75f"))  # yellow (93)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """At most `count` + 2 ticks at the finest round step (1, 2, 2.5 or 5 x 10^k) whose
    multiples cover [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high - low <= 0:
        pad = max(abs(high) * 0.01, 1.0)
        low, high = low - pad, high + pad
    power = 10 ** math.floor(math.log10((high - low) / count))
    for step in (m * power * scale for scale in (1, 10, 100) for m in (1, 2, 2.5, 5)):
        first, last = math.floor(low / step), math.ceil(high / step)
        if last - first <= count + 1:
            return [round(i * step, 10) for i in range(first, last + 1)]
    return [low, high]  # not reached: a step of 100x the raw one always fits


def money_axis(plt: Any, values: Sequence[float], side: str = "left") -> None:
    """Money labels on a y axis at round steps; the range widened to the outer ticks so
    the line never sits on the frame."""
    ticks = nice_ticks(min(values), max(values))
    if not ticks:
        return
    plt.ylim(ticks[0], ticks[-1], yside=side)
    plt.yticks(ticks, [money(t) for t in ticks], yside=side)


def date_axis(plt: Any, xs: Sequence[float], moments: Sequence[datetime],
              labels: int = 6) -> None:
    """About `labels` dates ("Nov 05", New York) along an x axis measured in days, never
    two close enough to collide (plotext would then drop one of them, and not always the
    same one); the latest is kept. A span within one day gets times ("10:30")."""
    if not xs:
        return
    span = (xs[-1] - xs[0]) or 1.0
    picked = [len(xs) - 1]
    for i in range(len(xs) - 2, -1, -max(1, len(xs) // labels)):
        if xs[picked[-1]] - xs[i] >= span / (labels + 2):
            picked.append(i)
    form = "%H:%M" if xs[-1] - xs[0] < 1 else "%b %d"
    chosen = list(reversed(picked))
    plt.xticks([xs[i] for i in chosen], [new_york(moments[i]).strftime(form) for i in chosen])


def legend(*names: str) -> Text:
    """The series' names in their line colours, for a border title or a line above."""
    text = Text()
    for (_rgb, hex_colour), name in zip(SERIES, names, strict=False):
        if text:
            text.append("  ")
        text.append("━━ ", style=f"bold {hex_colour}")
        text.append(name)
    return text
