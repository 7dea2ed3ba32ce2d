"""Loss circuit breakers (spec 6.1A): daily, weekly, peak-to-trough drawdown.

The reference equities come from the database (`Baselines`): the first equity of the
New York day, the first of the ISO week (so a mid-week start still has a week start,
and Monday does not reset all day long), and the highest ever recorded. A breach halts
trading through the kill switch, which persists it.
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
           base_label: str) -> CheckResult:
    figures = {"equity": nlv, base_label: base, "limit_pct": limit}
    if nlv is None:
        return CheckResult(breaker.name, "fail", "NetLiquidation unavailable: "
                           f"{breaker.label.lower()} cannot be checked", figures)
    if base is None or base <= 0:
        return CheckResult(breaker.name, "pass", f"No {base_label.replace('_', ' ')} recorded "
                           "yet: this equity becomes the baseline", figures)
    change = (nlv - base) / base
    figures["change_pct"] = change
    sign = "+" if change >= 0 else "-"
    text = (f"{breaker.label} {sign}{pct_vs(abs(change), abs(limit), 2)} ({money(nlv)} vs "
            f"{base_label.replace('_', ' ')} {money(base)}; limit {limit:.0%})")
    if change < limit:
        return CheckResult(breaker.name, "fail", f"{breaker.halt_reason}: {text}", figures)
    return CheckResult(breaker.name, "pass", text, figures)


def evaluate(nlv: float | None, baselines: Baselines | None,
             limits: RiskSettings) -> list[CheckResult]:
    b = baselines or Baselines(None, None, None)
    return [
        _check(DAILY, nlv, b.day_start, limits.max_daily_loss_pct, "day_start"),
        _check(WEEKLY, nlv, b.week_start, limits.max_weekly_loss_pct, "week_start"),
        _check(DRAWDOWN, nlv, b.peak, limits.max_drawdown_pct, "peak"),
    ]


def breached(checks: list[CheckResult]) -> list[CheckResult]:
    """Real breaches (a loss past the limit), not checks that failed for lack of data."""
    return [c for c in checks if c.failed and "change_pct" in c.figures]
