"""Number and time formatting shared by screens: one place, one style."""

from __future__ import annotations

from datetime import datetime

from core.clock import new_york


def money(value: float | None, *, cents: bool = False) -> str:
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}" if cents else f"{sign}${abs(value):,.0f}"


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def ny_time(moment: datetime | None, with_date: bool = False) -> str:
    if moment is None:
        return "—"
    ny = new_york(moment)
    return ny.strftime("%a %b %d %H:%M ET" if with_date else "%H:%M:%S ET")


def hm(moment: datetime | None) -> str:
    """Hours and minutes in New York, e.g. '16:00'."""
    return "—" if moment is None else new_york(moment).strftime("%H:%M")
