"""Performance journal (spec section 9, the parts an operator uses): statistics of closed
trades from the database — win rate, average P&L, P&L by sector, by delta, DTE and IV-rank
at entry — with the equity curve and its maximum drawdown.

A trade counts once it is closed with a realised P&L (closed, rolled, expired). An
assigned put has no realised P&L until its shares are sold: it is counted as assigned,
not in the P&L figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.db.tables import EquitySnapshot, Trade, TradeEntrySnapshot

CLOSED = ("CLOSED", "EXPIRED")


@dataclass
class Bucket:
    trades: int = 0
    wins: int = 0
    pnl: float = 0.0

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.trades if self.trades else None

    @property
    def average(self) -> float | None:
        return self.pnl / self.trades if self.trades else None

    def add(self, pnl: float) -> None:
        self.trades += 1
        self.wins += pnl > 0
        self.pnl += pnl

    def as_dict(self) -> dict[str, Any]:
        return {"trades": self.trades, "wins": self.wins, "win_rate": self.win_rate,
                "pnl": self.pnl, "average_pnl": self.average}


@dataclass
class Journal:
    overall: Bucket = field(default_factory=Bucket)
    open_trades: int = 0
    assigned: int = 0
    rolled: int = 0
    best: float | None = None
    worst: float | None = None
    by_sector: dict[str, Bucket] = field(default_factory=dict)
    by_delta: dict[str, Bucket] = field(default_factory=dict)
    by_dte: dict[str, Bucket] = field(default_factory=dict)
    by_iv_rank: dict[str, Bucket] = field(default_factory=dict)
    equity: list[tuple[datetime, float]] = field(default_factory=list)
    max_drawdown: float | None = None

    def as_dict(self) -> dict[str, Any]:
        def table(d: dict[str, Bucket]) -> dict[str, Any]:
            return {k: v.as_dict() for k, v in d.items()}

        return {"closed": self.overall.as_dict(), "win_rate": self.overall.win_rate,
                "average_pnl": self.overall.average, "total_pnl": self.overall.pnl,
                "open_trades": self.open_trades, "assigned": self.assigned,
                "rolled": self.rolled, "best": self.best, "worst": self.worst,
                "by_sector": table(self.by_sector), "by_delta": table(self.by_delta),
                "by_dte": table(self.by_dte), "by_iv_rank": table(self.by_iv_rank),
                "max_drawdown": self.max_drawdown,
                "equity_curve": [{"ts": t.isoformat(), "net_liquidation": v}
                                 for t, v in self.equity]}


def _bucket(value: float | None, edges: Sequence[float], labels: Sequence[str]) -> str:
    if value is None:
        return "unknown"
    for edge, label in zip(edges, labels, strict=False):
        if value < edge:
            return label
    return labels[-1]


def delta_bucket(delta: float | None) -> str:
    return _bucket(None if delta is None else abs(delta), (0.10, 0.20, 0.30),
                   ("<0.10", "0.10-0.20", "0.20-0.30", ">=0.30"))


def dte_bucket(days: int | None) -> str:
    return _bucket(days, (15, 31, 46), ("<=14", "15-30", "31-45", ">45"))


def iv_rank_bucket(rank: float | None) -> str:
    return _bucket(rank, (0.30, 0.50, 0.70), ("<30%", "30-50%", "50-70%", ">=70%"))


def max_drawdown(equity: Sequence[tuple[datetime, float]]) -> float | None:
    peak, worst = None, 0.0
    for _t, value in equity:
        peak = value if peak is None else max(peak, value)
        if peak:
            worst = min(worst, value / peak - 1.0)
    return worst if equity else None


def build_journal(trades: Sequence[Trade],
                  snapshot: Callable[[str], TradeEntrySnapshot | None],
                  equity: Sequence[EquitySnapshot]) -> Journal:
    j = Journal()
    for t in trades:
        if t.status == "OPEN":
            j.open_trades += 1
            continue
        if t.status == "ASSIGNED":
            j.assigned += 1
            continue
        if t.status not in CLOSED or t.realized_pnl is None:
            continue
        pnl = t.realized_pnl
        j.rolled += t.exit_reason == "rolled"
        j.overall.add(pnl)
        j.best = pnl if j.best is None else max(j.best, pnl)
        j.worst = pnl if j.worst is None else min(j.worst, pnl)
        snap = snapshot(t.id)
        days = (t.expiration - t.entry_time.date()).days
        for table, key in ((j.by_sector, t.sector or "Unknown"),
                           (j.by_delta, delta_bucket(snap.delta if snap else None)),
                           (j.by_dte, dte_bucket(days)),
                           (j.by_iv_rank, iv_rank_bucket(snap.iv_rank if snap else None))):
            table.setdefault(key, Bucket()).add(pnl)
    j.equity = [(e.ts, e.net_liquidation) for e in equity]
    j.max_drawdown = max_drawdown(j.equity)
    return j
