"""Loss circuit breakers (spec 6.1A): daily, weekly, peak-to-trough drawdown.

The reference equities come from the database, per account (`Baselines`): the previous
session's closing NetLiquidation (daily), the last close of the previous week (weekly),
and the highest ever recorded (drawdown). So a gap between sessions counts: a $103k close
and $100k now is -2.9% today. Where no close was recorded the first equity seen since
stands in and the check WARNs saying so. A breach halts trading through the kill switch,
which persists it.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config import RiskSettings
from core.models import CheckResult
from core.risk.figures import pct_vs
from core.risk.margin import Baselines, money


@dataclass(frozen=True)
class Breaker:
    name: str
    label: str
    halt_reason: str


DAILY = Breaker("daily_loss", "Daily P&L", "Daily loss limit exceeded")
WEEKLY = Breaker("weekly_loss", "Weekly P&L", "Weekly loss limit exceeded")
DRAWDOWN = Breaker("max_drawdown", "Drawdown from peak", "Max drawdown exceeded")


def _check(breaker: Breaker, nlv: float | None, base: float | None, limit: float,
           key: str, label: str, note: str = "") -> CheckResult:
    figures: dict[str, object] = {"equity": nlv, key: base, "limit_pct": limit,
                                  "baseline": label}
    if note:
        figures["baseline_note"] = note
    if nlv is None:
        return CheckResult(breaker.name, "fail", "NetLiquidation unavailable: "
                           f"{breaker.label.lower()} cannot be checked", figures)
    if base is None or base <= 0:
        return CheckResult(breaker.name, "warn", f"No baseline: {note or label + ' missing'}; "
                           "this equity becomes the baseline", figures)
    change = (nlv - base) / base
    figures["change_pct"] = change
    sign = "+" if change >= 0 else "-"
    text = (f"{breaker.label} {sign}{pct_vs(abs(change), abs(limit), 2)} ({money(nlv)} vs "
            f"{label} {money(base)}; limit {limit:.0%})")
    if change < limit:
        return CheckResult(breaker.name, "fail", f"{breaker.halt_reason}: {text}"
                           + (f" — {note}" if note else ""), figures)
    if note:
        return CheckResult(breaker.name, "warn", f"{text} — {note}", figures)
    return CheckResult(breaker.name, "pass", text, figures)


def evaluate(nlv: float | None, baselines: Baselines | None,
             limits: RiskSettings) -> list[CheckResult]:
    b = baselines or Baselines(None, None, None)
    return [
        _check(DAILY, nlv, b.day_start, limits.max_daily_loss_pct, "day_start", b.day_label,
               b.day_note),
        _check(WEEKLY, nlv, b.week_start, limits.max_weekly_loss_pct, "week_start",
               b.week_label, b.week_note),
        _check(DRAWDOWN, nlv, b.peak, limits.max_drawdown_pct, "peak", "peak"),
    ]


def breached(checks: list[CheckResult]) -> list[CheckResult]:
    """Real breaches (a loss past the limit), not checks that failed for lack of data."""
    return [c for c in checks if c.failed and "change_pct" in c.figures]
