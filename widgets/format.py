"""Number and time formatting shared by screens: one place, one style. The numbers come
from core.fmt (the CLI uses the same); the times are the console's."""

from __future__ import annotations

from datetime import datetime

from core.clock import new_york
from core.fmt import (
    DASH,
    contract_label,
    contracts,
    expiry,
    greek,
    money,
    option_label,
    pct,
    plural,
    pnl,
    price,
)

__all__ = ["DASH", "contract_label", "contracts", "expiry", "greek", "hm", "money", "ny_time",
           "option_label", "pct", "plural", "pnl", "price"]


def ny_time(moment: datetime | None, with_date: bool = False) -> str:
    if moment is None:
        return DASH
    ny = new_york(moment)
    return ny.strftime("%a %b %d %H:%M ET" if with_date else "%H:%M:%S ET")


def hm(moment: datetime | None) -> str:
    """Hours and minutes in New York, e.g. '16:00'."""
    return DASH if moment is None else new_york(moment).strftime("%H:%M")
