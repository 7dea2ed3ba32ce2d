"""The book at a glance: what a trader checks first, as one snapshot.

Built from the monitor's last position views and the database (the order ledger, roll
proposals, closed trades, equity history), so it shows what every PutDesk process on
the same database did. Blocking (database reads): call it in a thread.

Missing data is named, never guessed: a P&L without a day-start equity is None, and the
greek sums say how many positions they leave out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from core.clock import new_york
from core.models import SEVERITY_ORDER, PositionView

if TYPE_CHECKING:
    from core.db.tables import StagedOrder
    from core.engine import Engine, EngineState
    from core.monitoring.exits import ExitDecision

#: An order still in the market (or not known to be out of it): the ledger's view.
WORKING_STATUSES = ("SENDING", "WORKING", "UNKNOWN")


@dataclass(frozen=True)
class GreekSum:
    """A book total over the positions that have the figure; `missing` do not."""

    total: float
    counted: int
    missing: int


@dataclass(frozen=True)
class BookSummary:
    as_of: datetime
    #: Net liquidation now minus the day baseline of the loss breakers (the previous
    #: session's close); None without both. `day_basis` says what it is measured from.
    day_pnl: float | None
    #: Closed trades' realised P&L plus the open positions' P&L; None if an open one has
    #: no price.
    inception_pnl: float | None
    realized: float
    day_basis: str
    #: Open short puts, the worst P&L first (no price counts as worst: unknown risk).
    positions: tuple[PositionView, ...]
    #: Positions past an exit rule, not yet being closed: acted on at the next cycle.
    exits_due: tuple[ExitDecision, ...]
    exits_working: tuple[PositionView, ...]
    exits_stuck: tuple[PositionView, ...]
    pending_rolls: int
    working_orders: tuple[StagedOrder, ...]
    alerts: dict[str, int] = field(default_factory=dict)  # severity -> positions' alerts
    #: Share-equivalent delta (delta x 100 x signed contracts): + gains when the stock rises.
    delta: GreekSum = GreekSum(0.0, 0, 0)
    #: Dollars a day the book earns from time decay (theta x 100 x signed contracts).
    theta: GreekSum = GreekSum(0.0, 0, 0)
    excess_liquidity: float | None = None
    #: Excess liquidity above the warn line (warn % of NLV): what can be used before
    #: the governor warns. Negative: already below it.
    headroom: float | None = None
    next_cycle: datetime | None = None
    #: Whether the market takes orders now (exits due wait for it).
    orders_allowed: bool = False

    @property
    def alert_count(self) -> int:
        return sum(self.alerts.values())


def _worst_first(v: PositionView) -> tuple[int, float]:
    return (0, 0.0) if v.pnl is None else (1, v.pnl)


def _greek(views: tuple[PositionView, ...], attr: str) -> GreekSum:
    total, counted = 0.0, 0
    for v in views:
        value = getattr(v, attr)
        if value is None:
            continue
        total += value * 100 * v.quantity
        counted += 1
    return GreekSum(total, counted, len(views) - counted)


def next_cycle(engine: Engine, state: EngineState) -> datetime | None:
    """When the monitor checks the positions next (its last check plus its interval);
    None before the first check."""
    checked = state.positions_checked_at
    if checked is None:
        return None
    return checked + timedelta(minutes=engine.settings.monitoring.interval_minutes)


def build_book(engine: Engine, state: EngineState) -> BookSummary:
    """The summary for `state` (the engine's latest snapshot). Reads the database."""
    now = state.now
    views = state.positions
    rolls = engine.rolls.find(("PENDING", "REJECTED"))
    pending = {p.position_id for p in rolls if p.status == "PENDING"}
    today = new_york(now).date()
    rejected = {p.position_id for p in rolls
                if p.status == "REJECTED" and new_york(p.updated_at).date() == today}
    due: list[ExitDecision] = []
    for v in views:
        if v.exit_state:
            continue  # being closed, or stuck: shown as such
        decision = engine.exits.evaluate(v, roll_pending=v.position_id in pending,
                                         roll_rejected=v.position_id in rejected)
        if decision.action in ("close", "roll"):
            due.append(decision)

    realized = sum(t.realized_pnl or 0.0 for t in engine.trades.all()
                   if t.status != "OPEN")
    open_pnls = [v.pnl for v in views]
    inception = (None if any(p is None for p in open_pnls)
                 else realized + sum(p for p in open_pnls if p is not None))

    a = state.account
    nlv = a.net_liquidation if a is not None else None
    # The loss breakers' day baseline (the previous session's close): one definition.
    health = state.health
    day_start = health.baselines.day_start if health is not None else None
    day_nlv = health.net_liquidation if health is not None else None
    day_pnl = day_nlv - day_start if day_nlv is not None and day_start is not None else None
    day_basis = "" if health is None else (health.baselines.day_note
                                          or f"vs the {health.baselines.day_label}")
    excess = a.excess_liquidity if a is not None else None
    warn = engine.settings.risk.excess_liquidity_warn_pct
    headroom = excess - warn * nlv if excess is not None and nlv else None

    alerts: Counter[str] = Counter(a.severity for v in views for a in v.alerts)
    return BookSummary(
        as_of=now, day_pnl=day_pnl, inception_pnl=inception, realized=realized,
        day_basis=day_basis,
        positions=tuple(sorted(views, key=_worst_first)), exits_due=tuple(due),
        exits_working=tuple(v for v in views if v.exit_state.startswith("CLOSING")),
        exits_stuck=tuple(v for v in views if v.exit_state.startswith("EXIT STUCK")),
        pending_rolls=sum(1 for p in rolls if p.status == "PENDING"),
        working_orders=tuple(engine.staged.list(WORKING_STATUSES)),
        alerts=dict(sorted(alerts.items(), key=lambda kv: -SEVERITY_ORDER[kv[0]])),
        delta=_greek(views, "delta"), theta=_greek(views, "theta"),
        excess_liquidity=excess, headroom=headroom,
        next_cycle=next_cycle(engine, state),
        orders_allowed=bool(state.session and state.session.allows_orders))
