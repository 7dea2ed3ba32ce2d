"""MarginGauge: ExcessLiquidity / NLV on a bar with the reject and warning bands
(spec 6.2A), and margin utilisation against its limit."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from widgets.palette import BOLD_YELLOW, GREEN, ON_GREEN, ON_RED, ON_YELLOW, RED, YELLOW

BAR_WIDTH = 50


def _bar(value: float | None, bands: list[tuple[float, str]], width: int = BAR_WIDTH) -> Text:
    """A 0-100% bar; `bands` are (upper bound, style) from the left. The filled part
    takes the style of the band the value is in; the empty part shows the bands dimly."""
    text = Text()
    filled = 0 if value is None else max(0, min(width, round(value * width)))
    value_style = "dim"
    if value is not None:
        value_style = next((style for upper, style in bands if value < upper), bands[-1][1])
    for i in range(width):
        position = (i + 0.5) / width
        band_style = next((style for upper, style in bands if position < upper), bands[-1][1])
        if i < filled:
            text.append("█", style=value_style)
        else:
            text.append("░", style=f"dim {band_style}")
    return text


def _scale(marks: list[float], width: int = BAR_WIDTH) -> Text:
    """Percent labels under a bar, each starting at its mark (the last ends at the edge)."""
    line = [" "] * (width + 4)
    for mark in marks:
        label = f"{mark:.0%}"
        start = min(round(mark * width), width + 4 - len(label))
        line[start:start + len(label)] = label
    return Text("".join(line).rstrip(), style="dim")


class MarginGauge(Widget):
    """Set `values` to (excess_ratio, utilisation); thresholds come with the widget."""

    DEFAULT_CSS = """
    MarginGauge { height: auto; padding: 0 1; }
    """

    values: reactive[tuple[float | None, float | None]] = reactive((None, None))

    def __init__(self, reject_pct: float, warn_pct: float, max_utilization: float,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.reject_pct = reject_pct
        self.warn_pct = warn_pct
        self.max_utilization = max_utilization

    def band(self, ratio: float | None) -> tuple[str, str]:
        if ratio is None:
            return "UNKNOWN", BOLD_YELLOW
        if ratio < self.reject_pct:
            return "DANGER", ON_RED
        if ratio < self.warn_pct:
            return "LOW", ON_YELLOW
        return "HEALTHY", ON_GREEN

    def render(self) -> RenderableType:
        ratio, util = self.values
        label, style = self.band(ratio)
        excess = Text()
        excess.append("Excess liquidity / NLV  ", style="bold")
        excess.append("—" if ratio is None else f"{ratio:6.1%}", style="bold")
        excess.append("  ")
        excess.append(f" {label} ", style=style)
        bar = _bar(ratio, [(self.reject_pct, RED), (self.warn_pct, YELLOW), (2.0, GREEN)])
        scale = _scale([0.0, self.reject_pct, self.warn_pct, 1.0])
        utilisation = Text()
        utilisation.append("Margin utilisation     ", style="bold")
        utilisation.append("—" if util is None else f"{util:6.1%}", style="bold")
        utilisation.append(f"  limit {self.max_utilization:.0%}", style="dim")
        if util is not None and util > self.max_utilization:
            utilisation.append("  OVER LIMIT ", style=ON_RED)
        uscale = _scale([0.0, self.max_utilization, 1.0])
        ubar = _bar(util, [(self.max_utilization * 0.75, GREEN),
                           (self.max_utilization, YELLOW), (2.0, RED)])
        legend = Text(f"below {self.reject_pct:.0%} new trades are rejected, below "
                      f"{self.warn_pct:.0%} warned", style="dim italic")
        return Group(excess, bar, scale, legend, utilisation, ubar, uscale)
