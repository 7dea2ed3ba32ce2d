"""Scenario worlds for the risk tests: a compact book the tests shape per case."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

#: Tuesday 2026-11-24 10:30 ET (regular session), as in the demo.
NOW = "2026-11-24T10:30:00-05:00"

UNDERLYINGS: dict[str, dict[str, Any]] = {
    # Information Technology
    "AAPL": {"price": 230.0, "iv": 0.28, "earnings": "2027-01-29"},
    "MSFT": {"price": 470.0, "iv": 0.26, "earnings": "2027-01-27"},
    "NVDA": {"price": 180.0, "iv": 0.45, "earnings": "2027-02-24"},
    "AMD": {"price": 210.0, "iv": 0.50, "earnings": "2027-02-03"},
    "ORCL": {"price": 200.0, "iv": 0.40, "earnings": "2026-12-15"},
    # Health Care
    "JNJ": {"price": 160.0, "iv": 0.18, "earnings": "2027-01-20"},
    "UNH": {"price": 330.0, "iv": 0.30, "earnings": "2027-01-15"},
    # others
    "JPM": {"price": 300.0, "iv": 0.22, "earnings": "2027-01-13"},
    "XOM": {"price": 118.0, "iv": 0.24, "earnings": "2027-01-30"},
    # KO priced so that its 66 and 68 puts (the tests' clean trades) sit inside the entry
    # bounds: OTM 13% and 10.5%, delta ~0.10 and ~0.15, spread ~15% and ~9%.
    "KO": {"price": 76.0, "iv": 0.34, "earnings": "2027-02-10"},
    "DUK": {"price": 120.0, "iv": 0.17, "earnings": "2027-02-05"},
    "CAT": {"price": 500.0, "iv": 0.30, "earnings": "2027-01-29"},
    "INTC": {"price": 30.0, "iv": 0.45, "earnings": "2027-01-28"},
    "BA": {"price": 218.0, "iv": 0.35, "earnings": "2027-01-27"},  # its 240 put: deep ITM
    # not in the sector table
    "ZZZQ": {"price": 50.0, "iv": 0.40},
    "ZZZR": {"price": 40.0, "iv": 0.40},
    "ZZZS": {"price": 45.0, "iv": 0.40},
    "ZZZT": {"price": 55.0, "iv": 0.40},
}


def world(cash: float = 100_000.0, positions: list[dict[str, Any]] | None = None,
          vix: float | None = 18.0, equity_history: list[dict[str, Any]] | None = None,
          **changes: Any) -> dict[str, Any]:
    unds = copy.deepcopy(UNDERLYINGS)
    for u in unds.values():
        u.setdefault("iv_52w_low", round(u["iv"] * 0.6, 3))
        u.setdefault("iv_52w_high", round(u["iv"] * 1.8, 3))
    data: dict[str, Any] = {"version": 1, "now": NOW, "account": {"id": "DU0000009",
                                                                  "cash": cash},
                            "underlyings": unds, "positions": positions or [],
                            # Closes of the previous week (Friday) and the previous session
                            # (Monday): the loss breakers measure against recorded closes.
                            "equity_history": equity_history if equity_history is not None
                            else [{"date": "2026-11-20", "net_liquidation": cash},
                                  {"date": "2026-11-23", "net_liquidation": cash}]}
    if vix is not None:
        data["vix"] = vix
    data.update(changes)
    return data


def short_put(symbol: str, strike: float, expiration: str = "2027-01-15",
              quantity: int = -1, avg_price: float = 1.0) -> dict[str, Any]:
    return {"symbol": symbol, "right": "P", "strike": strike, "expiration": expiration,
            "quantity": quantity, "avg_price": avg_price, "opened": "2026-11-10",
            "underlying_at_entry": UNDERLYINGS[symbol]["price"], "roll_count": 0}


def write(tmp_path: Path, data: dict[str, Any], name: str = "world.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=1))
    return path
