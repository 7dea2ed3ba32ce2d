"""Symbol -> GICS sector.

Sources (core/data/README.md): the S&P 500 constituents table with GICS sectors
(datasets/s-and-p-500-companies, 2026-08-08) and a hand-kept ETF table (sector ETFs to
their sector; broad index ETFs "Broad Market"). Anything else is "Unknown", which the
concentration check counts as a sector of its own.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

DATA = Path(__file__).parents[1] / "data"
UNKNOWN = "Unknown"
BROAD_MARKET = "Broad Market"


def canonical_symbol(symbol: str) -> str:
    """One form for share classes: BRK.B (IBKR writes 'BRK B', Yahoo 'BRK-B')."""
    return symbol.strip().upper().replace(" ", ".").replace("-", ".").replace("/", ".")


@functools.cache
def _table() -> dict[str, str]:
    table: dict[str, str] = {}
    with (DATA / "sp500-constituents.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            table[canonical_symbol(row["Symbol"])] = row["GICS Sector"].strip()
    with (DATA / "etf-sectors.csv").open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            table[canonical_symbol(row["Symbol"])] = row["Sector"].strip()
    return table


@functools.lru_cache(maxsize=8192)
def get_sector(symbol: str) -> str:
    return _table().get(canonical_symbol(symbol), UNKNOWN)


@functools.cache
def _funds() -> frozenset[str]:
    with (DATA / "etf-sectors.csv").open(newline="", encoding="utf-8") as f:
        return frozenset(canonical_symbol(r["Symbol"]) for r in csv.DictReader(f))


def is_fund(symbol: str) -> bool:
    """An ETF/ETN from the ETF table (funds have no earnings reports)."""
    return canonical_symbol(symbol) in _funds()
