"""Figures printed beside a limit, with enough precision that a breached limit never reads
as equal to it ("VIX 40.01 above 40", not "VIX 40.0 above 40"), and a value just inside
never reads as sitting on it."""

from __future__ import annotations

MAX_DECIMALS = 6


def vs(value: float, limit: float, decimals: int = 1, scale: float = 1.0) -> str:
    """`value x scale` with at least `decimals` decimals, more when fewer would print it
    the same as `limit` although the two differ."""
    same = abs(value - limit) <= 1e-12 * max(1.0, abs(limit))  # float noise is not a breach
    for d in range(decimals, MAX_DECIMALS + 1):
        text = f"{value * scale:.{d}f}"
        if same or text != f"{limit * scale:.{d}f}":
            return text
    return f"{value * scale:.{MAX_DECIMALS}f}"


def pct_vs(value: float, limit: float, decimals: int = 1) -> str:
    """A fraction as a percentage beside a fractional limit: pct_vs(0.0999, 0.10) ->
    "9.99%"."""
    return vs(value, limit, decimals, 100.0) + "%"
