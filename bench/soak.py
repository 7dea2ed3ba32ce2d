"""Simulated soak (issue 9, item 1): the engine on the simulator for weeks of market.

A world of 19 underlyings in ten sectors (earnings dates spread across the run, one
stock whose single contract is over the per-trade margin cap, one broad ETF, two whose
implied vol is under the screen's minimum) is stepped day by day with a manual clock:
pre-market, the open, midday and the close of every session, holidays, Saturday (expiries
and assignments land), Sunday evening (the autopilot stages for Monday's open). Prices
random-walk; VIX follows 12 -> 45 -> 20 with implied vols tracking it; earnings move
their stock on the date; gaps down hit the book (a crash with the VIX spike, a sector, a
single name) and news lifts one held name's implied vol to the roll trigger.

Each week the autopilot runs the product's path: a Barchart-style export of the world is
screened by `engine.screening()`, the best candidates go through `engine.check()` (the
governor), approved ones are staged; Sunday's are sent by the open scheduler
(`engine.tick()`), midday ones on command (`engine.execute()`). Monitor cycles raise
alerts, exit, propose rolls (the operator approves and rejects them alternately, and
approves while halted, which must send nothing); the assignment detector runs; the book
is reconciled after every step. Halts happen: loss breakers fire in the crash (the
operator resumes before the next open), the operator pulls the kill switch before an open
(the staged orders wait, then go on command) and goes away for a week (nothing exits; a
put is assigned; they close a position by hand while halted), and faults are injected
(what-if errors, orders refused).

Invariants, checked at the broker boundary (every `place_order`, at send time) and after
every step, are described on `Soak.inspect_order` and `Soak.after_step`; a breach is a
`Violation`. Counts are reported at the end.

    python -m bench.soak --weeks 10          # the long form: counts and runtime
    python -m bench.soak --weeks 8 --json

tests/soak/test_soak.py runs the short form (8 weeks) in CI and asserts the counts are
not trivial. Order timings are fast (reprices every 50 ms) in both forms: the simulated
clock stands still while an order works, so only wall time would be spent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import logging
import math
import re
import sys
import tempfile
import time as wallclock
import traceback
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from core.broker.base import (
    BrokerEvent,
    FillReceived,
    OptionContract,
    OrderRequest,
    OrderState,
    OrderType,
    PositionsChanged,
    WhatIfMargin,
)
from core.broker.scenario import Scenario
from core.broker.sim import SimBroker, SimFaults
from core.clock import NEW_YORK, ManualClock, new_york
from core.config import Settings, load_settings
from core.db.session import Database
from core.db.tables import StagedOrder
from core.engine import Engine
from core.execution.staging import StagingError
from core.market.calendar import MarketCalendar, MarketSession, default_calendar
from core.market.sectors import get_sector
from core.models import Opportunity
from core.risk.kill_switch import HALT_KEY, HaltState
from core.risk.sizing import PositionSizer

log = logging.getLogger("putdesk.bench.soak")

#: The soak starts on a Sunday evening; its weeks run Monday to Sunday. The first weeks
#: take in an early close (Christmas Eve), two Friday holidays and a Monday holiday.
START = date(2026, 11, 30)

#: Order timings for the soak: reprice every 50 ms, give up after 5 s (wall time).
FAST_ORDERS = {"ORDER_REPRICE_INTERVAL_SECONDS": "0.05", "ORDER_TIMEOUT_SECONDS": "5"}

STAGED_REF = re.compile(r"^putdesk-[0-9a-f]{16}$")


@dataclass(frozen=True)
class Name:
    """An underlying of the soak's world. `iv` is its implied vol at VIX 20; `low`/`high`
    its 52-week IV range as multiples of `iv`; `earnings` when in the run it reports
    (a fraction of the run's length; None for a fund)."""

    symbol: str
    price: float
    iv: float
    low: float
    high: float
    earnings: float | None


UNIVERSE: tuple[Name, ...] = (
    Name("AAPL", 230.0, 0.34, 0.50, 1.60, 0.55),
    Name("MSFT", 470.0, 0.31, 0.55, 1.70, 0.80),
    Name("NVDA", 180.0, 0.50, 0.45, 1.35, 0.30),
    Name("AMD", 160.0, 0.55, 0.40, 1.25, 0.15),
    Name("UNH", 330.0, 0.38, 0.55, 1.80, 0.62),
    Name("PFE", 28.0, 0.33, 0.50, 1.60, 0.90),
    Name("INTC", 30.0, 0.45, 0.45, 1.50, 0.45),
    Name("F", 12.0, 0.38, 0.50, 1.60, 0.50),
    Name("JPM", 300.0, 0.31, 0.50, 1.60, 0.40),
    Name("BAC", 45.0, 0.34, 0.50, 1.70, 0.42),
    Name("XOM", 118.0, 0.32, 0.50, 1.60, 1.30),
    Name("CVX", 155.0, 0.32, 0.55, 1.60, 1.40),
    Name("KO", 70.0, 0.19, 0.60, 1.70, 1.10),  # raw IV under the screen's minimum
    Name("CAT", 380.0, 0.36, 0.50, 1.60, 0.70),
    Name("AMZN", 220.0, 0.42, 0.45, 1.40, 0.22),
    Name("TSLA", 350.0, 0.62, 0.42, 1.30, 0.95),
    Name("META", 600.0, 0.42, 0.50, 1.60, 0.60),
    Name("BKNG", 5000.0, 0.36, 0.50, 1.60, 1.20),  # one contract is over the per-trade cap
    Name("IWM", 230.0, 0.24, 0.55, 1.80, None),  # a fund: no earnings
)

#: Strikes written to the weekly export, as OTM fractions (some outside the 10-25% screen).
OTM_TARGETS = (0.06, 0.11, 0.15, 0.19, 0.28)
#: Expirations written to the export: the ones nearest these DTEs.
DTE_TARGETS = (14, 30)


@dataclass(frozen=True)
class Violation:
    at: str
    invariant: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.at}] {self.invariant}: {self.detail}"


#: ERROR/CRITICAL log records the soak expects, each with the reason it is expected.
#: Anything else at ERROR or above is an escaped failure.
EXPECTED_ERROR_LOGS: tuple[tuple[str, str, str], ...] = (
    ("putdesk.kill_switch", r"^TRADING HALTED: ",
     "every halt is logged at CRITICAL in the spec's wording; the soak halts on purpose"),
    ("putdesk.monitoring.assignments", r"^POSSIBLE ASSIGNMENT DETECTED: ",
     "the detector logs each assignment at CRITICAL (spec wording); assignments are expected"),
    ("putdesk.engine", r"^CRITICAL: ",
     "engine.alert logs CRITICAL alerts (delta breach, stop-loss closes, margin-limit "
     "rejections, assignments, failed rolls) at CRITICAL"),
    ("putdesk.engine", r"^EMERGENCY: Post-trade margin danger",
     "post-trade margin danger is an EMERGENCY alert by design"),
    ("putdesk.risk.margin", r"^Post-trade margin danger",
     "logged with the EMERGENCY alert above"),
)


@dataclass
class SoakConfig:
    weeks: int = 8
    seed: int = 7
    cash: float = 100_000.0
    autopilot_weekly: int = 4  # staged on Sunday for the open
    autopilot_daily: int = 2  # staged and sent at midday on these days:
    autopilot_days: tuple[int, ...] = (1, 3)  # Tuesday, Thursday
    checks_per_run: int = 12  # candidates sent to the governor per autopilot run
    workdir: Path | None = None
    settings: dict[str, str] = field(default_factory=dict)
    progress: bool = False


@dataclass
class SoakReport:
    weeks: int
    seed: int
    sessions: int = 0
    steps: int = 0
    sim_start: str = ""
    sim_end: str = ""
    seconds: float = 0.0
    orders: Counter[str] = field(default_factory=Counter)
    fills: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    rolls: Counter[str] = field(default_factory=Counter)
    assignments: Counter[str] = field(default_factory=Counter)
    halts: Counter[str] = field(default_factory=Counter)
    resumes: int = 0
    exits: Counter[str] = field(default_factory=Counter)
    failed_checks: Counter[str] = field(default_factory=Counter)  # every failed check
    autopilot: Counter[str] = field(default_factory=Counter)
    world: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    expected_logs: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if isinstance(value, Counter | dict):
                out[name] = dict(sorted(value.items()))
            elif name == "violations":
                out[name] = [str(v) for v in value]
            else:
                out[name] = value
        return out

    def lines(self) -> list[str]:
        def counter(c: Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"

        out = [
            f"soak: {self.weeks} weeks ({self.sessions} sessions, {self.steps} steps, "
            f"{self.sim_start} -> {self.sim_end}), seed {self.seed}: {self.seconds:.1f} s",
            f"  orders sent {sum(self.orders.values())}: {counter(self.orders)}",
            f"  fills {sum(self.fills.values())}: {counter(self.fills)}",
            f"  rejections {sum(self.rejections.values())}:",
            *(f"    {k}: {v}" for k, v in sorted(self.rejections.items())),
            f"  governor checks failed (any, not only the deciding one): "
            f"{counter(self.failed_checks)}",
            f"  alerts {sum(self.alerts.values())}: {counter(self.alerts)}",
            f"  rolls: {counter(self.rolls)}",
            f"  assignments: {counter(self.assignments)}",
            f"  halts {sum(self.halts.values())}: {counter(self.halts)}; resumes {self.resumes}",
            f"  exits: {counter(self.exits)}",
            f"  autopilot: {counter(self.autopilot)}",
            f"  world: {counter(self.world)}",
            f"  invariant checks: {counter(self.checks)}",
            f"  expected ERROR/CRITICAL logs: {counter(self.expected_logs)}",
            f"  final: {json.dumps(self.final, default=str)}",
            "  wall time by activity: "
            + ", ".join(f"{k} {v:.1f}s" for k, v in sorted(self.timing.items())),
            f"  events ({len(self.notes)}):",
            *(f"    {n}" for n in self.notes),
            f"  violations: {len(self.violations)}",
        ]
        by: dict[str, list[Violation]] = {}
        for v in self.violations:
            by.setdefault(v.invariant, []).append(v)
        for invariant, found in sorted(by.items()):
            out.append(f"    {invariant}: {len(found)}")
            out += [f"      {v}" for v in found[:5]]
        return out


# --- the world ------------------------------------------------------------------------


def _weekday_on_or_after(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def earnings_dates(weeks: int) -> dict[str, date]:
    span = weeks * 7
    return {n.symbol: _weekday_on_or_after(START + timedelta(days=round(n.earnings * span)))
            for n in UNIVERSE if n.earnings is not None}


def build_scenario(config: SoakConfig) -> Scenario:
    start = datetime.combine(START - timedelta(days=1), time(17, 0), NEW_YORK)
    dates = earnings_dates(config.weeks)
    underlyings: dict[str, dict[str, Any]] = {}
    for n in UNIVERSE:
        u: dict[str, Any] = {"price": n.price, "iv": round(n.iv * iv_factor(12.0), 4),
                             "iv_52w_low": round(n.iv * n.low, 4),
                             "iv_52w_high": round(n.iv * n.high, 4),
                             "sector": get_sector(n.symbol)}
        if n.symbol in dates:
            u["earnings"] = dates[n.symbol].isoformat()
        underlyings[n.symbol] = u
    return Scenario.from_data({
        "version": 1, "now": start.isoformat(),
        "account": {"id": "DU0SOAK01", "cash": config.cash}, "vix": 12.0,
        "underlyings": underlyings})


def iv_factor(vix: float) -> float:
    """Implied vols follow VIX: x (VIX / 20) ^ 0.5."""
    return float((vix / 20.0) ** 0.5)


class SoakBroker(SimBroker):
    """The simulator with an inspector on the order path: every order is shown to the
    soak before the simulator takes it (the broker boundary)."""

    inspector: Callable[[OrderRequest], Awaitable[None]] | None = None

    modify_inspector: Callable[[int, float], Awaitable[None]] | None = None

    async def place_order(self, order: OrderRequest) -> OrderState:
        if self.connected and self.inspector is not None:
            await self.inspector(order)
        return await super().place_order(order)

    async def modify_order(self, order_id: int, limit_price: float) -> OrderState:
        if self.connected and self.modify_inspector is not None:
            await self.modify_inspector(order_id, limit_price)
        return await super().modify_order(order_id, limit_price)

    def working_orders(self) -> list[Any]:
        """The simulator's orders still working (any sender)."""
        return [o for o in self._orders.values() if not o.status.is_done]

    async def margin_of(self, order: OrderRequest) -> WhatIfMargin:
        """The simulator's what-if for an order, never faulted (the inspector's own view)."""
        faults, self.faults = self.faults, SimFaults()
        try:
            return await super().what_if(order)
        finally:
            self.faults = faults

    def set_earnings(self, symbol: str, day: date | None) -> None:
        self._und(symbol).earnings = day

    def iv(self, symbol: str) -> float:
        return self._und(symbol).iv

    def price(self, symbol: str) -> float:
        return self._und(symbol).price

    def vix_now(self) -> float | None:
        return self._vix

    def mid(self, contract: OptionContract) -> float | None:
        return self._quote(contract).mid

    def short_puts(self) -> list[OptionContract]:
        return sorted(c for c, h in self._options.items() if h.quantity < 0)

    def held(self, contract: OptionContract) -> float:
        h = self._options.get(contract)
        return h.quantity if h is not None else 0.0

    def shares(self, symbol: str) -> float:
        h = self._stocks.get(symbol)
        return h.quantity if h is not None else 0.0


class SoakEngine(Engine):
    """The engine, counting the alerts it raises (kind, and the monitor's alert kinds)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.alert_counts: Counter[str] = Counter()
        super().__init__(*args, **kwargs)

    def alert(self, severity: str, message: str, kind: str = "alert",
              symbol: str | None = None, data: dict[str, Any] | None = None) -> None:
        sub = data.get("kind") if kind == "alert" and data else None
        self.alert_counts[f"{kind}:{sub}" if sub else kind] += 1
        super().alert(severity, message, kind, symbol, data)


class _LogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def reason_key(text: str) -> str:
    """A rejection reason without its figures, for counting: 'OTM% 8.3% outside range
    10-25%' -> 'OTM% N outside range N'; a symbol is dropped."""
    text = text.strip()
    if text.startswith("BLOCKED:"):
        return "earnings within DTE"
    head = text.split(":", 1)[0]
    if ":" in text and len(head.split()) >= 2 and not any(ch.isdigit() for ch in head):
        return head  # "Daily loss limit exceeded: ..." -> "Daily loss limit exceeded"
    words: list[str] = []
    for word in re.split(r"\s+", text):
        word = word.strip("(),;")
        if any(ch.isdigit() for ch in word) or "$" in word:
            word = "N" + (":" if word.endswith(":") else "")
            if words and words[-1].startswith("N"):
                continue
        elif word.isupper() and 2 <= len(word) <= 5 and word not in ("IV", "DTE", "VIX",
                                                                     "OTM%", "N"):
            continue  # a symbol
        if word:
            words.append(word)
        if len(words) == 5:
            break
    return " ".join(words).rstrip(":") or "(no reason)"


# --- the soak ---------------------------------------------------------------------------


class Soak:
    def __init__(self, config: SoakConfig) -> None:
        self.config = config
        self.report = SoakReport(config.weeks, config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.workdir = config.workdir or Path(tempfile.mkdtemp(prefix="putdesk-soak-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        db_url = f"sqlite:///{self.workdir}/soak.db"
        values = {"PUTDESK_DATABASE_URL": db_url,
                  "PUTDESK_LOG_FILE": str(self.workdir / "putdesk.log"),
                  "ASSIGNMENT_RESPONSE_MODE": "SELL_IMMEDIATELY", **FAST_ORDERS,
                  **config.settings}
        self.settings: Settings = load_settings(values)
        self.calendar: MarketCalendar = default_calendar()
        world = build_scenario(config)
        self.clock = ManualClock(world.now)
        self.broker = SoakBroker(world, clock=self.clock, calendar=self.calendar,
                                 seed=config.seed, label="soak")
        self.engine = SoakEngine(self.settings, self.broker, Database(db_url), self.clock,
                                 self.calendar, wall_clock=self.clock)
        # A second PutDesk process on the same database and account, and a third that is
        # killed mid-order (its own .env: slow reprices, so its order still works when
        # it dies).
        self.second = SoakEngine(self.settings, self.broker, Database(db_url),
                                 self.clock, self.calendar, wall_clock=self.clock)
        self.doomed = SoakEngine(load_settings(
            {**values, "ORDER_REPRICE_INTERVAL_SECONDS": "60", "ORDER_TIMEOUT_SECONDS": "600"}),
            self.broker, Database(db_url), self.clock, self.calendar, wall_clock=self.clock)
        # The other processes see a halt as they would within a kill-switch sync.
        self.engine.kill_switch.add_listener(self._others_sync)
        self.engine.identify("soak: first process")
        self.second.identify("soak: second process")
        self.doomed.identify("soak: third process (killed mid-order)")
        self.dead_senders: set[str] = set()
        self.broker.inspector = self.inspect_order
        self.broker.modify_inspector = self.inspect_modify
        self.broker.add_listener(self._on_broker_event)
        self.engine.kill_switch.add_listener(self._on_halt)
        self.sizer = PositionSizer(self.settings)
        self.sessions = self._sessions()
        self.vix = 12.0
        self.where = "start"
        self.operator = False  # inside an operator's own action (close while halted)
        self.drill_halt = False
        self.roll_turn = 0
        self.audit_seen = 0
        self.slowest: list[tuple[float, str]] = []
        self.collector = _LogCollector()
        self.events = self._plan()

    def _others_sync(self, _state: HaltState) -> None:
        for other in (self.second, self.doomed):
            other.kill_switch.sync()

    @contextlib.asynccontextmanager
    async def timed(self, activity: str) -> AsyncIterator[None]:
        began = wallclock.perf_counter()
        try:
            yield
        finally:
            t = self.report.timing
            t[activity] = t.get(activity, 0.0) + wallclock.perf_counter() - began

    # --- calendar and plan ------------------------------------------------------------

    def _sessions(self) -> list[date]:
        days = [START + timedelta(days=i) for i in range(self.config.weeks * 7)]
        return [d for d in days if self.calendar.is_session(d)]

    def session_in_week(self, week: int, weekday: int) -> date:
        """The session on `weekday` of `week`, or the next one that week (or the last)."""
        week = max(0, min(week, self.config.weeks - 1))
        monday = START + timedelta(days=7 * week)
        days = [d for d in self.sessions if monday <= d < monday + timedelta(days=7)]
        later = [d for d in days if d.weekday() >= weekday]
        return later[0] if later else days[-1]

    def _plan(self) -> dict[tuple[date, str], list[tuple[str, Any]]]:
        """Scripted events by (session, phase), scaled to the run's length."""
        n = self.config.weeks
        plan: dict[tuple[date, str], list[tuple[str, Any]]] = {}

        def add(day: date, phase: str, kind: str, arg: Any = None) -> None:
            plan.setdefault((day, phase), []).append((kind, arg))

        self.crash_week = max(1, round(0.28 * n))
        crash = self.session_in_week(self.crash_week, 1)
        self.crash_day = self.sessions.index(crash)
        add(self.session_in_week(max(1, round(0.12 * n)), 2), "mid", "gap", ("held", -0.11))
        add(crash, "mid", "gap", ("market", -0.07))
        add(self.sessions[self.crash_day + 1], "pre", "gap", ("market", -0.03))
        add(self.session_in_week(round(0.62 * n), 0), "pre", "gap", ("sector:Energy", -0.09))
        add(self.session_in_week(round(0.85 * n), 3), "mid", "gap", ("held", -0.15))
        for week, weekday in ((1, 3), (round(0.45 * n), 0), (round(0.8 * n), 2)):
            add(self.session_in_week(week, weekday), "open", "vol_shock", 1.75)
        # The operator is away for a week (see plan_away): from a week in this range.
        self.away_weeks = (max(2, round(0.35 * n)), max(2, n - 2))
        self.away_week: int | None = None
        self.away_target: OptionContract | None = None
        self.no_combos_week = max(1, round(0.7 * n))
        # News before the open: halted through the open slot, resumed at midday, and the
        # orders that waited are sent on command.
        news = 1  # the second Monday, while the book builds
        add(self.session_in_week(news, 0), "pre", "halt", "Operator: news review before the open")
        add(self.session_in_week(news, 0), "mid", "resume_and_send", None)
        add(self.session_in_week(max(1, round(0.4 * n)), 1), "mid", "fault",
            "whatif_error")
        add(self.session_in_week(1, 3), "mid", "fault", "reject_orders")
        # Two processes at once on one database and account, every week; one of them is
        # killed mid-order once (kill -9: nothing of it runs any more).
        for week in range(n):
            add(self.session_in_week(week, 2), "close", "two_processes", None)
        add(self.session_in_week(max(1, round(0.5 * n)), 1), "close", "kill_a_sender", None)
        return plan

    def plan_away(self, today: date) -> None:
        """The operator goes away (kill switch) before today's open until the Saturday after
        the nearest held put expires: nothing exits meanwhile, the put is pushed in the
        money the day before it expires, and it is assigned at expiry while nobody can
        close it; puts expiring with it expire. Back on Saturday, the detector finds the
        shares and sells them (the market order rests until Monday's open). Planned on
        the first session in `away_weeks` with a held put 3-9 days from expiry (or on the
        last session of that range with any held put)."""
        first, last_week = self.away_weeks
        week = (today - START).days // 7
        if self.away_week is not None or not first <= week <= last_week:
            return
        held = sorted(self.broker.short_puts(), key=lambda c: (c.expiration, c.symbol))
        soon = [c for c in held if 3 <= (c.expiration - today).days <= 9]
        final = today == self.session_in_week(last_week, 4)
        if not soon and not (final and held):
            return
        target = (soon or held)[0]
        last = max(d for d in self.sessions if d <= target.expiration) if any(
            d <= target.expiration for d in self.sessions) else today
        before = max(today, self.sessions[max(self.sessions.index(last) - 1, 0)]
                     if last in self.sessions else today)
        saturday = target.expiration + timedelta(days=(5 - target.expiration.weekday()) % 7)
        self.away_week = week
        self.away_target = target
        self.note(f"operator away until {saturday}: {target.key} expires")
        for day, phase, kind, arg in (
                (today, "pre", "halt", f"Operator away until {saturday:%a %d %b}"),
                (before, "mid", "gap", ("nearest-itm", -0.08)),
                (before, "mid", "operator_close", None),
                (saturday, "saturday", "resume", None)):
            self.events.setdefault((day, phase), []).append((kind, arg))

    def note(self, text: str) -> None:
        self.report.notes.append(f"[{self.where}] {text}")

    def vix_on(self, index: int) -> float:
        """12 -> 13 before the crash, 45 the day after it, then back towards 20."""
        total = len(self.sessions)
        if index < self.crash_day:
            base = 12.0 + index / max(self.crash_day, 1)
        elif index == self.crash_day:
            base = 13.0
        else:
            tau = max(total / 6.0, 2.0)
            base = 20.0 + 25.0 * math.exp(-(index - self.crash_day - 1) / tau)
        return round(base + float(self.rng.normal(0.0, 0.4)), 2)

    # --- the run ------------------------------------------------------------------------

    async def run(self) -> SoakReport:
        started = wallclock.perf_counter()
        loop = asyncio.get_running_loop()
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._on_loop_exception)
        root = logging.getLogger()
        root.addHandler(self.collector)
        try:
            await self._open()
            self.report.sim_start = new_york(self.clock.now()).isoformat()
            await self.step("sunday", self.clock.now(), self.weekend_stage)
            for week in range(self.config.weeks):
                monday = START + timedelta(days=7 * week)
                for offset in range(7):
                    day = monday + timedelta(days=offset)
                    if offset == 5:
                        await self.step("saturday", _at(day, 10, 0), self.saturday)
                    elif offset == 6:
                        await self.step("sunday", _at(day, 18, 0), self.weekend_stage)
                    elif self.calendar.is_session(day):
                        await self.trading_day(day)
                    else:
                        await self.step("holiday", _at(day, 12, 0), self.holiday)
                if self.config.progress:
                    print(f"  week {week + 1}: {self.report.steps} steps, "
                          f"{sum(self.report.orders.values())} orders, "
                          f"{len(self.report.violations)} violations "
                          f"({wallclock.perf_counter() - started:.1f} s)", flush=True)
            self.report.sim_end = new_york(self.clock.now()).isoformat()
            await self._final()
        finally:
            root.removeHandler(self.collector)
            try:
                await self.doomed.stop()
                await self.second.stop()
                await self.engine.stop()
            finally:
                loop.set_exception_handler(previous_handler)
        self.report.seconds = wallclock.perf_counter() - started
        return self.report

    async def _open(self) -> None:
        await self.engine.open()
        await self.second.open()
        await self.doomed.open()
        await self.broker.connect()
        await self.engine.refresh_account()
        await self.engine.reconcile()

    async def step(self, phase: str, at: datetime, body: Callable[[], Awaitable[None]]
                   ) -> None:
        began = wallclock.perf_counter()
        try:
            await self._step(phase, at, body)
        finally:
            spent = wallclock.perf_counter() - began
            self.slowest.append((spent, self.where))
            self.slowest = sorted(self.slowest, reverse=True)[:5]

    async def _step(self, phase: str, at: datetime, body: Callable[[], Awaitable[None]]
                    ) -> None:
        self.clock.set(at)
        self.where = f"{new_york(at):%a %Y-%m-%d %H:%M} {phase}"
        self.report.steps += 1
        # From this week on the account cannot trade combos: rolls go close-then-open.
        self.broker.faults.reject_combos = new_york(at).date() >= START + timedelta(
            days=7 * self.no_combos_week)
        try:
            await body()
        except Exception as exc:
            self.violation("no exception escapes", f"{type(exc).__name__}: {exc}\n"
                           + "".join(traceback.format_exception(exc))[-2000:])
        finally:
            self.broker.faults = SimFaults()  # an injected fault lasts one step
        await self.settle()
        await self.after_step()

    async def settle(self) -> None:
        """Wait for what the engine spawned (first looks after position changes, the open
        scheduler) so every step ends with a quiet engine."""
        for _ in range(50):
            pending = [t for t in list(self.engine._tasks) if not t.done()]
            if not pending:
                return
            results = await asyncio.gather(*pending, return_exceptions=True)
            for r in results:
                if isinstance(r, Exception):
                    self.violation("no exception escapes", f"engine task: {r!r}")

    async def trading_day(self, day: date) -> None:
        index = self.sessions.index(day)
        self.report.sessions += 1
        oc = self.calendar.open_close(day)
        assert oc is not None
        opening, closing = oc
        hour, minute = (int(x) for x in self.settings.execution.open_time.split(":"))
        slot = _at(day, hour, minute) + timedelta(
            seconds=self.settings.execution.open_delay_seconds)
        midday = min(_at(day, 12, 30), closing - timedelta(minutes=90))

        async def pre() -> None:
            self.plan_away(day)
            self.vix = self.vix_on(index)
            self.broker.set_vix(self.vix)
            weekend = 0.55 if day.weekday() == 0 else 0.3
            self.broker.random_walk(weekend * 365 / 252)
            await self.earnings_events(day)
            self.set_ivs(day)
            await self.scripted(day, "pre")
            self.broker.process_time()
            await self.settle()
            await self.operator_review()
            await self.engine.refresh_account()

        async def at_open() -> None:
            await self.scripted(day, "open")
            async with self.timed("open scheduler"):
                await self.engine.tick()  # the open scheduler sends what was staged before it
                await self.settle()
            await self.monitor()

        async def at_midday() -> None:
            self.broker.random_walk(0.35 * 365 / 252)
            await self.scripted(day, "mid")
            self.broker.process_time()
            await self.settle()
            await self.monitor()
            if day.weekday() in self.config.autopilot_days:
                await self.autopilot(self.config.autopilot_daily,
                                     send_now=not self._halted())

        async def at_close() -> None:
            self.broker.random_walk(0.35 * 365 / 252)
            self.broker.process_time()
            await self.settle()
            await self.monitor()
            await self.scripted(day, "close")

        await self.step("pre", _at(day, 9, 0), pre)
        await self.step("open", max(slot, opening) + timedelta(seconds=30), at_open)
        await self.step("midday", midday, at_midday)
        await self.step("close", closing - timedelta(minutes=15), at_close)

    async def saturday(self) -> None:
        # Expiries and assignments at Friday's close; the detector runs on the change.
        await self.scripted(new_york(self.clock.now()).date(), "saturday")
        self.broker.process_time()
        await self.settle()
        await self.engine.monitor_cycle()
        await self.engine.exits.settled()

    async def holiday(self) -> None:
        self.broker.process_time()
        await self.settle()
        await self.engine.monitor_cycle()
        await self.engine.exits.settled()

    async def weekend_stage(self) -> None:
        await self.autopilot(self.config.autopilot_weekly, send_now=False)

    # --- the world's moves ---------------------------------------------------------------

    def set_ivs(self, day: date) -> None:
        factor = iv_factor(self.vix)
        for n in UNIVERSE:
            earnings = self.broker.earnings_date(n.symbol)
            ahead = earnings is not None and 0 <= (earnings - day).days <= 5
            self.broker.set_iv(n.symbol, round(n.iv * factor * (1.2 if ahead else 1.0), 4))

    async def earnings_events(self, day: date) -> None:
        for n in UNIVERSE:
            earnings = self.broker.earnings_date(n.symbol)
            if earnings is None or earnings > day:
                continue
            move = float(self.rng.choice([-1.0, 1.0])) * float(self.rng.uniform(0.04, 0.10))
            price = self.broker.price(n.symbol)
            self.broker.set_price(n.symbol, round(price * (1 + move), 2))
            self.broker.set_earnings(n.symbol, earnings + timedelta(days=91))
            self.report.world[f"earnings {'up' if move > 0 else 'down'}"] += 1

    async def scripted(self, day: date, phase: str) -> None:
        for kind, arg in self.events.get((day, phase), []):
            if kind == "gap":
                await self.gap(*arg)
            elif kind == "halt":
                self.drill_halt = True
                await asyncio.to_thread(self.engine.halt, str(arg), "operator (soak)")
            elif kind == "resume":
                await self.resume("operator (soak): back")
            elif kind == "resume_and_send":
                await self.resume("operator (soak): news reviewed")
                results = await self.engine.execute()
                self.count_results(results, "on command")
            elif kind == "operator_close":
                await self.operator_close()
            elif kind == "vol_shock":
                await self.vol_shock(float(arg))
            elif kind == "two_processes":
                await self.two_processes()
            elif kind == "kill_a_sender":
                await self.kill_a_sender()
            elif kind == "fault":
                self.report.world[f"fault {arg}"] += 1
                self.note(f"fault injected: {arg}")
                if arg == "whatif_error":
                    self.broker.faults.whatif_error = "what-if service unavailable (soak)"
                else:
                    self.broker.faults.reject_orders = "exchange closed the book (soak)"

    async def two_processes(self) -> None:
        """Both processes at the same moment: each runs the monitor (and so its exits)
        and each tries to send everything staged. The ledger's claims let exactly one
        send each order and each close (checked at the broker: inspect_order)."""
        if self._halted():
            return
        await self.autopilot(2, send_now=False)
        ids = [r.id for r in await asyncio.to_thread(self.engine.staged.list, ("STAGED",))]
        self.report.world["two-process steps"] += 1
        async with self.timed("two processes"):
            first, second = await asyncio.gather(self.engine.execute(ids),
                                                 self.second.execute(ids))
            for how, results in (("first process", first), ("second process", second)):
                for _row, r in results:
                    self.report.autopilot[f"two processes, {how}: {r.outcome.lower()}"] += 1
            await asyncio.gather(self.engine.monitor_cycle(), self.second.monitor_cycle())
            await asyncio.gather(self.engine.exits.settled(), self.second.exits.settled())
        for row_id in ids:
            row = await asyncio.to_thread(self.engine.staged.get, row_id)
            if row is not None and len(self._orders_with(row.order_ref)) > 1:
                self.violation("one sender", f"{row.order_ref} placed "
                               f"{len(self._orders_with(row.order_ref))} times")

    def _orders_with(self, ref: str) -> list[Any]:
        return [o for o in self.broker._orders.values() if o.request.order_ref == ref]

    async def kill_a_sender(self) -> None:
        """The third process is killed (kill -9) while its opening order works: its task
        stops where it is, nothing cancels the order, its claim is no longer renewed.
        When the claim runs out the first process adopts the order and follows it to
        its end (here: its timeout has passed, so it is cancelled)."""
        if self._halted():
            return
        await self.autopilot(1, send_now=False)
        rows = await asyncio.to_thread(self.engine.staged.list, ("STAGED",))
        if not rows:
            self.note("kill -9 step: nothing staged to send")
            return
        row = rows[-1]
        task = asyncio.ensure_future(self.doomed.execute([row.id]))
        for _ in range(200):
            current = await asyncio.to_thread(self.engine.staged.get, row.id)
            if task.done() or (current is not None and current.status == "WORKING"):
                break
            await asyncio.sleep(0.01)
        if task.done():
            self.note(f"kill -9 step: {row.order_ref} ended before the kill")
            return
        task.cancel()  # the process dies: no handler, no cancel, no more heartbeats
        with contextlib.suppress(asyncio.CancelledError):
            await task
        dead = self.doomed.ledger.sender
        self.dead_senders.add(dead)
        working = [o for o in self._orders_with(row.order_ref) if not o.status.is_done]
        self.report.world["kill -9 of a sender mid-order"] += 1
        self.note(f"kill -9: {dead} with {row.order_ref} "
                  f"{'working' if working else 'already done'} at the broker")
        lease = self.settings.execution.order_lease_seconds
        self.clock.set(self.clock.now() + timedelta(seconds=lease + 1))
        adopted = await self.engine.adopt_orphans()
        await self.engine.adoptions_settled()
        self.report.world["orders adopted after a kill"] += len(adopted)
        if row.order_ref not in adopted:
            self.violation("never an order working with nobody following it",
                           f"{row.order_ref} of a killed sender was not adopted")
        after = await asyncio.to_thread(self.engine.staged.get, row.id)
        self.note(f"adopted {row.order_ref}: {after.status if after else '?'} — "
                  f"{(after.message or '') if after else ''}")
        self.doomed.identify("soak: third process (restarted)")

    async def gap(self, target: str, pct: float) -> None:
        positions = [p for p in await self.broker.positions()
                     if p.sec_type == "OPT" and p.contract is not None and p.quantity < 0]
        symbols: list[str]
        if target == "market":
            symbols = [n.symbol for n in UNIVERSE]
        elif target.startswith("sector:"):
            symbols = [n.symbol for n in UNIVERSE if get_sector(n.symbol) == target[7:]]
        elif target == "held":
            symbols = sorted({p.symbol for p in positions})[:1] or ["AMD"]
        else:  # nearest-itm: the put nearest expiry ends up in the money by |pct|
            if not positions:
                return
            nearest = next((p for p in positions if p.contract == self.away_target),
                           min(positions, key=lambda p: (
                               p.contract.expiration if p.contract else date.max,
                               p.symbol)))
            assert nearest.contract is not None
            price = self.broker.price(nearest.symbol)
            target_price = nearest.contract.strike * (1 + pct)
            pct = min(target_price / price - 1, -0.02)
            symbols = [nearest.symbol]
        for symbol in symbols:
            self.broker.set_price(symbol, round(self.broker.price(symbol) * (1 + pct), 2))
        if target == "market" and pct <= -0.05:
            # A crash moves VIX with it, intraday: 1 point per 0.2% fall, IVs follow.
            self.vix = round(self.vix - pct * 500, 2)
            self.broker.set_vix(self.vix)
            self.set_ivs(new_york(self.clock.now()).date())
        self.report.world[f"gap {target.split(':')[0]}"] += 1
        self.note(f"gap {pct:+.1%} ({target}): {', '.join(symbols)}")

    async def vol_shock(self, loss: float) -> None:
        """News lifts one held name's implied vol (not its price) until its put is down
        `loss` times the premium: past the roll trigger, short of the stop."""
        views = await self.engine.monitor.refresh(notify=False)
        rolls = self.settings.rolls
        fit = sorted((v for v in views if v.trade_id is not None and v.delta is not None
                      and abs(v.delta) < 0.3 and v.roll_count < rolls.max_rolls
                      and v.dte > 7 and v.entry_price > 0),
                     key=lambda v: (abs(v.delta or 0.0), v.position_id))
        if not fit:
            self.note("vol shock: no position fits")
            return
        v = fit[0]
        lo, hi = self.broker.iv(v.symbol), self.broker.iv(v.symbol) * 8
        for _ in range(30):
            self.broker.set_iv(v.symbol, (lo + hi) / 2)
            mid = self.broker.mid(v.contract)
            if mid is not None and (mid - v.entry_price) / v.entry_price < loss:
                lo = (lo + hi) / 2
            else:
                hi = (lo + hi) / 2
        self.broker.set_iv(v.symbol, round(hi, 4))
        self.report.world["vol shock"] += 1
        self.note(f"vol shock: {v.symbol} IV {hi:.0%} ({v.position_id} down ~{loss:.0%})")

    # --- the operator -------------------------------------------------------------------

    def _halted(self) -> bool:
        return self.engine.kill_switch.is_halted()[0]

    async def resume(self, actor: str) -> None:
        if self._halted():
            await asyncio.to_thread(self.engine.resume, actor)
        self.drill_halt = False

    async def operator_review(self) -> None:
        """A halt the soak did not script (a breaker, post-trade margin) is reviewed and
        cleared before the next session's open; scripted halts wait for their resume."""
        if self._halted() and not self.drill_halt:
            await self.resume("operator (soak): reviewed the breaker")

    async def operator_close(self) -> None:
        """Close the worst position by hand while halted: the product allows this."""
        views = await self.engine.monitor.refresh(notify=False)
        losing = sorted((v for v in views if v.loss_multiple is not None
                         and v.contract != self.away_target),
                        key=lambda v: (-(v.loss_multiple or 0.0), v.position_id))
        if not losing:
            return
        self.operator = True
        try:
            result = await self.engine.exits.close(losing[0], "operator close while halted",
                                                   "operator (soak)")
        finally:
            self.operator = False
        self.report.exits[f"operator close {result.outcome.lower()}"] += 1

    async def decide_rolls(self) -> None:
        """The operator decides every pending roll: approve, reject, approve ... in order;
        while trading is halted they approve (a roll sells a new put: it must not go out)."""
        pending = sorted(await asyncio.to_thread(self.engine.rolls.find, ("PENDING",)),
                         key=lambda p: (p.symbol, p.position_id))
        for p in pending:
            halted = self._halted()
            self.roll_turn += 0 if halted else 1
            if halted or self.roll_turn % 2 == 1:
                done = await self.engine.roll_manager.approve(p.id, "operator (soak)")
                self.report.rolls[f"approved{' while halted' if halted else ''} -> "
                                  f"{done.status.lower()}"] += 1
                self.note(f"roll of {p.position_id} approved: {done.status} {done.result}")
                if done.status != "EXECUTED" and not (done.result or "").strip():
                    self.violation("every rejection has a reason",
                                   f"roll {p.position_id} {done.status} without a result")
            else:
                await self.engine.roll_manager.reject(p.id, "operator (soak)")
                self.report.rolls["rejected by the operator"] += 1
                self.note(f"roll of {p.position_id} rejected by the operator")

    async def monitor(self) -> None:
        async with self.timed("monitor"):
            await self.engine.monitor_cycle()
            await self.engine.exits.settled()
            await self.settle()
        async with self.timed("roll decisions"):
            await self.decide_rolls()

    # --- the autopilot --------------------------------------------------------------------

    async def autopilot(self, stage_max: int, *, send_now: bool) -> None:
        """Scan a Barchart-style export of the world, check the best candidates, stage
        the approved ones; `send_now` sends them at once (else they wait for the open)."""
        engine = self.engine
        async with self.timed("scan"):
            path = await self.write_export()
            result = await engine.screening().scan_csv(path)
            await engine.record_scan(result, actor="autopilot (soak)")
        self.report.autopilot["scans"] += 1
        self.report.autopilot["candidates accepted"] += len(result.accepted)
        for r in result.rejected:
            if not r.reason.strip():
                self.violation("every rejection has a reason", f"scan rejection {r}")
            self.report.rejections[f"screen {r.stage}: {reason_key(r.reason)}"] += 1
        staged: list[StagedOrder] = []
        symbols: set[str] = set()
        checked = 0
        for c in result.accepted:
            if len(staged) >= stage_max or checked >= self.config.checks_per_run:
                break
            if c.symbol in symbols:
                continue
            checked += 1
            async with self.timed("check"):
                decision = await engine.check(Opportunity.from_candidate(c),
                                              actor="autopilot (soak)")
            if not decision.approved:
                continue  # counted from its audit row
            try:
                staged.append(await engine.stage(decision, "autopilot (soak)"))
            except StagingError as exc:
                self.report.rejections[f"stage: {reason_key(str(exc))}"] += 1
                continue
            symbols.add(c.symbol)
        self.report.autopilot["checked"] += checked
        self.report.autopilot["staged"] += len(staged)
        if send_now and staged:
            async with self.timed("execute"):
                results = await engine.execute([s.id for s in staged])
            self.count_results(results, "now")

    def count_results(self, results: list[tuple[Any, Any]], how: str) -> None:
        for _row, r in results:
            self.report.autopilot[f"sent {how}: {r.outcome.lower()}"] += 1
            if r.outcome in ("REJECTED", "CANCELLED") and not r.reason.strip():
                self.violation("every rejection has a reason", f"order {r.order_ref}")

    async def write_export(self) -> Path:
        """The world as a Barchart options-screener export (a custom view with Ask and IV),
        footer included: what the operator would download before a scan."""
        today = new_york(self.clock.now()).date()
        path = self.workdir / "barchart-export.csv"
        rows: list[list[str]] = []
        for n in UNIVERSE:
            chain = await self.broker.option_chain(n.symbol)
            price = await self.broker.underlying_price(n.symbol)
            if chain is None or price is None:
                continue
            expirations = []
            for dte in DTE_TARGETS:
                e = min(chain.expirations, key=lambda d: abs((d - today).days - dte))
                if e not in expirations:
                    expirations.append(e)
            for expiration in expirations:
                strikes = []
                for otm in OTM_TARGETS:
                    s = max((k for k in chain.strikes if k <= price * (1 - otm)),
                            default=None)
                    if s is not None and s not in strikes:
                        strikes.append(s)
                for strike in strikes:
                    q = await self.broker.option_quote(OptionContract(n.symbol, expiration,
                                                                      strike))
                    if q.bid is None or q.ask is None:
                        continue
                    key = zlib.crc32(f"{n.symbol}{expiration}{strike}".encode())
                    rows.append([n.symbol, f"{price:.2f}", expiration.isoformat(),
                                 str((expiration - today).days), f"{strike:.2f}", "Put",
                                 f"{(strike - price) / price:.2%}", f"{q.bid:.2f}",
                                 f"{q.ask:.2f}", str(key % 900),
                                 f"{40 + key % 4000:,}",
                                 f"{(q.iv or 0) * 100:.2f}%" if q.iv else "N/A",
                                 f"{abs(q.delta):.4f}" if q.delta is not None else "N/A"])
        chicago = self.clock.now().astimezone(_CHICAGO)
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["Symbol", "Price~", "Exp Date", "DTE", "Strike", "Type", "Moneyness",
                        "Bid", "Ask", "Volume", "Open Int", "IV", "Delta"])
            w.writerows(rows)
            fh.write(f'"Downloaded from Barchart.com as of {chicago:%m-%d-%Y %I:%M%p} CT"\n')
        return path

    # --- events ----------------------------------------------------------------------

    def _on_broker_event(self, event: BrokerEvent) -> None:
        if isinstance(event, FillReceived):
            kind = order_kind_of_ref(event.fill.order_ref, event.fill.contract is None)
            self.report.fills[kind] += 1
            session = self.calendar.session_at(self.clock.now()).session
            trading = (self.calendar.options_trading(self.clock.now(), event.fill.symbol)
                       if event.fill.contract is not None
                       else session is MarketSession.REGULAR)
            if not trading:
                self.violation("session", f"{kind} fill {event.fill.order_ref} in "
                               f"{session.value}")
            if kind in ("open", "roll", "roll open") and self._halted():
                self.violation("no order while halted", f"{kind} fill "
                               f"{event.fill.order_ref} while halted")
        elif isinstance(event, PositionsChanged):
            for part in event.reason.split("; "):
                if " assigned: " in part:
                    self.report.assignments["at expiry (simulator)"] += 1
                    self.note(part)
                elif "expired worthless" in part:
                    self.report.world["expired worthless"] += 1
                    self.note(part)

    def _on_halt(self, state: HaltState) -> None:
        if state.halted:
            self.report.halts[reason_key(state.reason)] += 1
            self.note(f"HALT: {state.reason}")
        else:
            self.report.resumes += 1
            self.note(f"resumed by {state.by}")

    def _on_loop_exception(self, loop: asyncio.AbstractEventLoop,
                           context: dict[str, Any]) -> None:
        exc = context.get("exception")
        self.violation("no exception escapes", f"event loop: {context.get('message')} "
                       f"{exc!r}")

    def violation(self, invariant: str, detail: str) -> None:
        self.report.violations.append(Violation(self.where, invariant, detail))
        log.debug("violation %s: %s", invariant, detail)

    # --- invariants at the broker boundary ------------------------------------------------

    async def inspect_order(self, order: OrderRequest) -> None:
        """Every order, at send time:

        - kill switch: nothing is sent while halted (the flag in memory and the persisted
          row both say so), except what the product allows then: the operator's own
          closes (a BUY that only reduces a short put) - not automatic exits, not rolls,
          not opening sells, not assigned-stock sales;
        - session: options orders only in a session that allows orders (REGULAR or
          PRE_MARKET, spec 3.4B); a sale of assigned stock may go out any time as a
          market order (decisions.md: it rests until the regular session), and must not
          fill outside it (checked on the fill);
        - opening sells (orderRef putdesk-<staged id>): the staged row was claimed
          (SENDING) and carries an approved, non-preview governor decision; the
          executor's re-validation at this very moment is in the audit trail, approved,
          for this contract; the quantity is within the staged size, that decision's
          sizing, and a fresh sizing from its equity and the live VIX (0 above the VIX
          halt); the decision's margin impact is within its per-trade cap and the
          simulator's what-if of this order is within MAX_MARGIN_PER_TRADE_PCT of the
          account's NLV now (plus the premium difference between the staged and live
          limit); no earnings between today and expiration (the world's own date);
        - closes: a BUY of a put held short, no more than held;
        - rolls (combo): an APPROVED proposal under that orderRef; buys back no more than
          held; the what-if margin change within the per-trade cap; no earnings up to
          the new expiration;
        - assigned stock: a SELL of no more shares than held.
        """
        kind = order_kind(order)
        self.report.orders[kind] += 1
        self.report.checks["orders inspected"] += 1
        engine, now = self.engine, self.clock.now()
        halted, reason = engine.kill_switch.is_halted()
        row = await asyncio.to_thread(engine.state_repo.get, HALT_KEY)
        persisted = bool(row and json.loads(row[0]).get("halted"))
        label = f"{kind} {order.action} {order.quantity} {_order_label(order)} ({order.order_ref})"
        if halted or persisted:
            allowed = kind == "close" and self.operator
            if not allowed:
                self.violation("no order while halted", f"{label} sent while halted "
                               f"({reason or 'persisted halt'})")
        session = self.calendar.session_at(now)
        if kind != "stock" and not session.allows_orders:
            self.violation("session", f"{label} sent in {session.session.value}")
        if kind == "stock":
            if order.action != "SELL" or order.quantity > self.broker.shares(order.underlying):
                self.violation("stock sale", f"{label}: holds "
                               f"{self.broker.shares(order.underlying):g} shares")
            if order.order_type is not OrderType.MARKET and not session.allows_orders:
                self.violation("session", f"{label} is not a market order outside hours")
            if session.session is not MarketSession.REGULAR:
                self.report.checks["stock sales sent outside the regular session"] += 1
            return
        if kind in ("close", "roll close"):
            assert order.contract is not None
            held = -self.broker.held(order.contract)
            if order.action != "BUY" or order.quantity > held:
                self.violation("close reduces", f"{label}: short {held:g}")
            others = [o for o in self.broker.working_orders() if o.request.action == "BUY"
                      and o.request.contract == order.contract]
            if others:
                self.violation("one close per position", f"{label} while "
                               f"{others[0].request.order_ref} works")
            self.report.checks["closes: one per position"] += 1
            return
        if kind == "roll":
            await self._inspect_roll(order, label)
            return
        if kind == "roll open":
            await self._inspect_roll_open(order, label)
            return
        await self._inspect_open(order, label)

    async def inspect_modify(self, order_id: int, limit: float) -> None:
        """A reprice is a new price for the market to fill: an opening sell (or a roll)
        is never repriced while trading is halted."""
        found = self.broker._orders.get(order_id)
        if found is None:
            return
        kind = order_kind(found.request)
        self.report.checks["reprices inspected"] += 1
        if kind in ("open", "roll", "roll open") and self._halted():
            self.violation("no order while halted", f"{kind} {found.request.order_ref} "
                           f"repriced to {limit:.2f} while halted")

    async def _inspect_open(self, order: OrderRequest, label: str) -> None:
        engine, now = self.engine, self.clock.now()
        assert order.contract is not None
        c = order.contract
        today = new_york(now).date()
        staged = await asyncio.to_thread(engine.staged.by_ref, order.order_ref)
        if staged is None:
            self.violation("governor decision", f"{label}: no staged order with this ref")
            return
        if staged.status != "SENDING":
            self.violation("governor decision", f"{label}: staged order is {staged.status}, "
                           "not claimed")
        staged_decision = json.loads(staged.decision)
        if not staged_decision.get("approved") or staged_decision.get("preview"):
            self.violation("governor decision", f"{label}: the staged decision is not an "
                           "approved what-if decision")
        if order.quantity > staged.contracts:
            self.violation("sizing", f"{label}: over the staged {staged.contracts}")
        rows = await asyncio.to_thread(engine.audit.list, now, ["risk_decision"], 200)
        mine = [r for r in rows if r.actor == "executor" and r.data
                and _same_contract(json.loads(r.data).get("opportunity", {}), c)]
        if not mine:
            self.violation("governor decision", f"{label}: no re-validation decision at "
                           "send time")
            return
        decision = json.loads(mine[0].data or "{}")
        self.report.checks["opening orders with a passing decision"] += 1
        if not decision.get("approved") or decision.get("preview"):
            self.violation("governor decision", f"{label}: latest decision "
                           f"{decision.get('summary')}")
        sizing = decision.get("sizing") or {}
        if order.quantity > int(sizing.get("contracts") or 0) or (
                order.quantity > int(decision.get("contracts") or 0)):
            self.violation("sizing", f"{label}: over the decision's {sizing.get('contracts')}")
        opp = Opportunity(c.symbol, c.expiration, c.strike, order.limit_price,
                          requested_contracts=staged.contracts)
        fresh = self.sizer.calculate(opp, sizing.get("equity"), self.broker.vix_now())
        if order.quantity > fresh.contracts:
            self.violation("sizing", f"{label}: a fresh sizing allows {fresh.contracts} "
                           f"({fresh.explanation})")
        whatif = decision.get("whatif") or {}
        impact, cap = whatif.get("margin_impact"), whatif.get("per_trade_cap")
        if impact is None or cap is None or impact > cap:
            self.violation("margin cap", f"{label}: decision impact {impact} vs cap {cap}")
        account = await self.broker.account_values()
        margin = await self.broker.margin_of(order)
        change = margin.init_margin_change
        cap_now = (account.net_liquidation or 0.0) * self.settings.risk.max_margin_per_trade_pct
        slack = abs((order.limit_price or 0.0) - staged.limit_price) * 100 * order.quantity + 1
        self.report.checks["opening orders margin-checked"] += 1
        if change is None or change > cap_now + slack:
            self.violation("margin cap", f"{label}: what-if margin {change} over the cap "
                           f"{cap_now:.2f} (NLV {account.net_liquidation})")
        earnings = self.broker.earnings_date(c.symbol)
        if earnings is not None and today <= earnings <= c.expiration:
            self.violation("earnings", f"{label}: earnings on {earnings} before expiration")

    async def _proposal_of(self, order_ref: str) -> str | None:
        """The roll proposal an order was sent for, from its order-ledger row."""
        row = await asyncio.to_thread(self.engine.staged.by_ref, order_ref)
        if row is None or row.kind not in ("roll", "close"):
            return None
        proposal = json.loads(row.decision or "{}").get("proposal_id")
        return str(proposal) if proposal else None

    async def _inspect_roll_open(self, order: OrderRequest, label: str) -> None:
        """The second leg of a roll done as close-then-open (no combos): an approved
        proposal for this very put, no earnings up to its expiration."""
        assert order.contract is not None
        c, today = order.contract, new_york(self.clock.now()).date()
        proposals = await asyncio.to_thread(self.engine.rolls.find, ("APPROVED",))
        proposal_id = await self._proposal_of(order.order_ref)
        match = [p for p in proposals if p.id == proposal_id
                 and p.new_strike == c.strike and p.new_expiration == c.expiration
                 and order.quantity <= p.contracts]
        if not match:
            self.violation("roll approved", f"{label}: no approved proposal for this leg")
        self.report.checks["rolls with an approved proposal"] += 1
        earnings = self.broker.earnings_date(c.symbol)
        if earnings is not None and today <= earnings <= c.expiration:
            self.violation("earnings", f"{label}: earnings on {earnings} before expiration")

    async def _inspect_roll(self, order: OrderRequest, label: str) -> None:
        today = new_york(self.clock.now()).date()
        proposals = await asyncio.to_thread(self.engine.rolls.find, ("APPROVED",))
        proposal_id = await self._proposal_of(order.order_ref)
        match = [p for p in proposals if p.id == proposal_id]
        if not match:
            self.violation("roll approved", f"{label}: no approved proposal")
            return
        self.report.checks["rolls with an approved proposal"] += 1
        buy = [leg for leg in order.legs if leg.action == "BUY"]
        sell = [leg for leg in order.legs if leg.action == "SELL"]
        if len(buy) != 1 or len(sell) != 1:
            self.violation("roll shape", f"{label}: legs {order.legs}")
            return
        held = -self.broker.held(buy[0].contract)
        if order.quantity > held:
            self.violation("close reduces", f"{label}: buys back {order.quantity}, short "
                           f"{held:g}")
        account = await self.broker.account_values()
        margin = await self.broker.margin_of(order)
        cap = (account.net_liquidation or 0.0) * self.settings.risk.max_margin_per_trade_pct
        change = margin.init_margin_change
        if change is None or change > cap:
            self.violation("margin cap", f"{label}: roll margin change {change} over {cap}")
        new = sell[0].contract
        earnings = self.broker.earnings_date(new.symbol)
        if earnings is not None and today <= earnings <= new.expiration:
            self.violation("earnings", f"{label}: earnings on {earnings} before "
                           f"{new.expiration}")

    # --- invariants after every step ---------------------------------------------------

    async def after_step(self) -> None:
        """After every step:

        - every rejection has a reason: governor decisions that were not approved name
          the check and its reason; refused, rejected and cancelled orders, exits that
          did not fill, staged orders that ended REJECTED/CANCELLED and roll proposals
          that were rejected, expired or failed all carry a non-empty reason;
        - after reconciliation (engine.reconcile) nothing is missing at or unknown to the
          broker, no staged order is left SENDING/UNKNOWN, and the database's open trades
          are exactly the broker's short puts (contract and size);
        - no exception escaped: no engine task failed, the event loop reported nothing,
          and no ERROR/CRITICAL log record appeared that is not in EXPECTED_ERROR_LOGS.
        """
        try:
            async with self.timed("invariants: followed"):
                await self._every_working_order_followed()
            async with self.timed("invariants: reasons"):
                await self._rejections_have_reasons()
            async with self.timed("invariants: reconcile"):
                await self._books_agree()
        except Exception as exc:
            self.violation("no exception escapes", f"after the step: {exc!r}\n"
                           + "".join(traceback.format_exception(exc))[-2000:])
        self._logs_clean()

    async def _every_working_order_followed(self) -> None:
        """Never an order working at the broker with nobody following it: each one's
        ledger row is claimed by a live process."""
        for o in self.broker.working_orders():
            row = await asyncio.to_thread(self.engine.staged.by_ref, o.request.order_ref)
            self.report.checks["working orders followed"] += 1
            if row is None:
                self.violation("never an order working with nobody following it",
                               f"{o.request.order_ref}: no ledger row")
            elif row.sender in self.dead_senders or row.status not in (
                    "SENDING", "WORKING", "UNKNOWN"):
                self.violation("never an order working with nobody following it",
                               f"{row.order_ref} {row.status} followed by {row.sender}")

    async def _rejections_have_reasons(self) -> None:
        engine = self.engine
        rows = await asyncio.to_thread(engine.audit.list, self.clock.now(), None, 100_000)
        fresh = sorted((r for r in rows if (r.id or 0) > self.audit_seen),
                       key=lambda r: r.id or 0)
        if fresh:
            self.audit_seen = max(r.id or 0 for r in fresh)
        for r in fresh:
            data = json.loads(r.data) if r.data else {}
            self.report.checks["audit rows checked"] += 1
            if r.kind == "risk_decision":
                verdict = "approved" if data.get("approved") else "rejected"
                who = "executor" if r.actor == "executor" else "autopilot"
                self.report.autopilot[f"decisions {verdict} ({who})"] += 1
                for check in data.get("checks") or []:
                    if check.get("status") == "fail":
                        self.report.failed_checks[str(check.get("name"))] += 1
                if not data.get("approved"):
                    name = data.get("rejected_by")
                    if not name or not str(data.get("reason") or "").strip():
                        self.violation("every rejection has a reason", f"decision {r.message}")
                    self.report.rejections[f"governor: {name}"] += 1
            elif r.kind in ("order_rejected", "order_cancelled"):
                reason = str(data.get("reason") or "")
                if not reason.strip():
                    self.violation("every rejection has a reason", f"order {r.message}")
                self.report.rejections[f"order: {_order_reason(reason)}"] += 1
            elif r.kind == "order_filled":
                self.report.autopilot["opening fills recorded"] += 1
            elif r.kind == "exit" and "outcome" in data:  # (the exit alerts have no data)
                outcome = data.get("outcome")
                rule = str(data.get("rule") or "").split(":")[0]
                self.report.exits[f"{rule} {str(outcome).lower()}"] += 1
                if outcome not in ("FILLED", "PARTIAL") and not str(
                        data.get("reason") or "").strip():
                    self.violation("every rejection has a reason", f"exit {r.message}")
                if outcome not in ("FILLED", "PARTIAL"):
                    self.report.rejections[f"exit: {reason_key(str(data.get('reason')))}"] += 1
            elif r.kind == "roll_proposed":
                self.report.rolls["proposed"] += 1
            elif r.kind == "assignment":
                self.report.assignments["detected"] += 1
                self.note(r.message)
            elif r.kind == "assignment_response" and r.actor == "assignment detector":
                self.report.assignments[f"response: {reason_key(r.message)}"] += 1
                self.note(r.message)
            elif r.kind == "expiry":
                settled = "expired worthless" if "expired worthless" in r.message else "assigned"
                self.report.assignments[f"settled at expiry: {settled}"] += 1
        for s in await asyncio.to_thread(engine.staged.list, ("REJECTED", "CANCELLED")):
            if not (s.message or "").strip():
                self.violation("every rejection has a reason", f"staged {s.order_ref} "
                               f"{s.status} without a message")
        for p in await asyncio.to_thread(engine.rolls.find, ("REJECTED", "EXPIRED", "FAILED")):
            if not (p.decided_by or "").strip() or (p.status == "FAILED"
                                                    and not (p.result or "").strip()):
                self.violation("every rejection has a reason", f"roll {p.position_id} "
                               f"{p.status}")

    async def _books_agree(self) -> None:
        engine = self.engine
        report = await engine.reconcile()
        self.report.checks["reconciliations"] += 1
        if report.error or report.missing_at_broker or report.unknown_at_broker:
            self.violation("database and broker agree", report.summary())
        in_flight = await asyncio.to_thread(engine.staged.list, ("SENDING", "UNKNOWN"))
        if in_flight:
            self.violation("database and broker agree", "staged orders still in flight: "
                           + ", ".join(f"{s.order_ref} {s.status}" for s in in_flight))
        held: Counter[tuple[str, float, date]] = Counter()
        for p in await self.broker.positions():
            if p.sec_type == "OPT" and p.contract is not None and p.quantity < 0:
                held[(p.symbol, p.contract.strike, p.contract.expiration)] += int(-p.quantity)
        db: Counter[tuple[str, float, date]] = Counter()
        for t in await asyncio.to_thread(engine.trades.open_trades):
            db[(t.symbol, t.strike, t.expiration)] += t.contracts
        if held != db:
            self.violation("database and broker agree",
                           f"broker only {_fmt(held - db)}; database only {_fmt(db - held)}")

    def _logs_clean(self) -> None:
        records, self.collector.records = self.collector.records, []
        for record in records:
            text = record.getMessage()
            why = next((reason for name, pattern, reason in EXPECTED_ERROR_LOGS
                        if record.name == name and re.search(pattern, text)), None)
            if why is not None:
                self.report.expected_logs[f"{record.name} {record.levelname}"] += 1
                continue
            detail = f"{record.name} {record.levelname}: {text}"
            if record.exc_info and record.exc_info[1] is not None:
                detail += "\n" + "".join(traceback.format_exception(record.exc_info[1]))[-1500:]
            self.violation("no exception escapes", detail)

    # --- the end ---------------------------------------------------------------------

    async def _final(self) -> None:
        engine = self.engine
        for name, n in engine.alert_counts.items():
            self.report.alerts[name] += n
        for p in await asyncio.to_thread(engine.rolls.find, None):
            self.report.rolls[f"final {p.status.lower()}"] += 1
        trades = await asyncio.to_thread(engine.trades.all)
        account = await self.broker.account_values()
        positions = await self.broker.positions()
        self.report.final = {
            "net_liquidation": round(account.net_liquidation or 0.0, 2),
            "excess_liquidity": round(account.excess_liquidity or 0.0, 2),
            "short_puts": sum(1 for p in positions if p.sec_type == "OPT"),
            "stock_positions": sum(1 for p in positions if p.sec_type == "STK"),
            "trades": dict(Counter(t.status for t in trades)),
            "vix": self.vix, "halted": self._halted(),
            "slowest_steps": [f"{where} {spent:.2f}s" for spent, where in self.slowest],
        }


# --- helpers ----------------------------------------------------------------------------

_CHICAGO = ZoneInfo("America/Chicago")


def _at(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), NEW_YORK)


def _fmt(c: Counter[tuple[str, float, date]]) -> str:
    return ", ".join(f"{s} {e} {k:g}P x{n}" for (s, k, e), n in sorted(c.items())) or "-"


def _same_contract(opp: dict[str, Any], c: OptionContract) -> bool:
    return (opp.get("symbol") == c.symbol and float(opp.get("strike") or 0) == c.strike
            and opp.get("expiration") == c.expiration.isoformat())


def _order_label(order: OrderRequest) -> str:
    if order.contract is not None:
        return order.contract.key
    if order.stock is not None:
        return f"{order.stock} shares"
    return " / ".join(f"{leg.action} {leg.contract.key}" for leg in order.legs)


def _order_reason(reason: str) -> str:
    if reason.startswith("No longer passes the risk checks"):
        m = re.search(r"REJECTED by (\w+)", reason)
        return f"re-validation: {m.group(1) if m else '?'}"
    return reason_key(reason)


def order_kind_of_ref(ref: str, stock: bool = False) -> str:
    if stock or ref.startswith("putdesk-assign-"):
        return "stock"
    for prefix, kind in (("putdesk-close-", "close"), ("putdesk-rollc-", "roll close"),
                         ("putdesk-rollo-", "roll open"), ("putdesk-roll-", "roll")):
        if ref.startswith(prefix):
            return kind
    return "open" if STAGED_REF.match(ref) else f"unknown ({ref})"


def order_kind(order: OrderRequest) -> str:
    if order.stock is not None:
        return "stock"
    if order.legs:
        return "roll"
    kind = order_kind_of_ref(order.order_ref)
    if kind == "close" and order.action != "BUY":
        return "unknown (a close that sells)"
    return kind


async def run_soak(config: SoakConfig) -> SoakReport:
    return await Soak(config).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split(
        "\n\n")[0] if __doc__ else None)
    parser.add_argument("--weeks", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the database and log here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.weeks < 1:
        parser.error("--weeks must be at least 1")
    logging.getLogger().addHandler(logging.NullHandler())  # no last-resort stderr spam
    with tempfile.TemporaryDirectory(prefix="putdesk-soak-") as scratch:
        config = SoakConfig(weeks=args.weeks, seed=args.seed,
                            workdir=args.workdir or Path(scratch), progress=not args.json)
        report = asyncio.run(run_soak(config))
    if args.json:
        print(json.dumps(report.as_dict(), indent=1, default=str))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
