"""Money, percent, price and greek formatting: one style for the console, the CLI and
the charts (plain strings: core imports no rich/textual).

Money always reads sign first: "-$477", never "$-477"; P&L carries "+" when asked
(`signed`). None is "—" everywhere: a missing figure is shown as missing, never as 0.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

DASH = "—"


def money(value: float | None, *, cents: bool = False, signed: bool = False) -> str:
    """Dollars with thousands separators, sign before the "$": -$1,234 / +$56.25."""
    if value is None:
        return DASH
    amount = round(abs(value), 2 if cents else 0)
    sign = "-" if value < 0 and amount else ("+" if signed and amount else "")
    return f"{sign}${amount:,.2f}" if cents else f"{sign}${amount:,.0f}"


def pnl(value: float | None, *, cents: bool = False) -> str:
    """A P&L: money with its sign always shown."""
    return money(value, cents=cents, signed=True)


def price(value: float | None) -> str:
    """An option or stock price per share: 2 decimals, no "$" (table cells)."""
    return DASH if value is None else f"{value:,.2f}"


def pct(value: float | None, digits: int = 1, *, signed: bool = False) -> str:
    """A fraction as percent: 0.052 -> "5.2%"."""
    if value is None:
        return DASH
    return f"{value * 100:+.{digits}f}%" if signed else f"{value * 100:.{digits}f}%"


def greek(value: float | None, digits: int = 2) -> str:
    """A per-share greek (delta -0.2502002246774673 -> "-0.25"; -0.0001 -> "0.00", not a
    "-0.00" that reads as a short delta)."""
    if value is None:
        return DASH
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def expiry(day: date) -> str:
    """ "18Dec26": an expiration (or an earnings day) as the console's tables show it,
    the year kept (a LEAP is not next month's) and short enough for 80 columns."""
    return f"{day:%d%b%y}"


def option_label(expiration: date, strike: float, right: str = "P") -> str:
    """ "18Dec26 200P": the option without its symbol (a roll's new leg)."""
    return f"{expiry(expiration)} {strike:g}{right}"


def contract_label(symbol: str, expiration: date, strike: float, right: str = "P") -> str:
    """ "AMD 18Dec26 200P": an option as the console's tables name it, the expiration
    short enough to leave room for the figures on 80 columns."""
    return f"{symbol} {option_label(expiration, strike, right)}"


def contracts(n: int) -> str:
    """ "1 contract", "3 contracts"."""
    return f"{n} contract" if abs(n) == 1 else f"{n} contracts"


def plural(n: float, one: str, many: str | None = None) -> str:
    """ "1 contract", "3 contracts", "1 share", "200 shares" (`many`: an irregular
    plural)."""
    word = one if abs(n) == 1 else (many or f"{one}s")
    count = int(n) if float(n).is_integer() else n  # 200.0 shares -> "200"
    return f"{count:,} {word}"


def shares(n: float) -> str:
    """ "1 share", "200 shares"."""
    return plural(n, "share")


#: Significant digits kept in machine-readable output: binary float noise
#: (-857.4999999999999) goes, every real figure keeps 1e-12 relative precision.
JSON_DIGITS = 12


def clean_floats(data: Any) -> Any:
    """`data` with every float cut to JSON_DIGITS significant digits (dicts, lists,
    tuples)."""
    if isinstance(data, float):
        return float(f"{data:.{JSON_DIGITS}g}") if math.isfinite(data) else data
    if isinstance(data, dict):
        return {k: clean_floats(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [clean_floats(v) for v in data]
    return data
