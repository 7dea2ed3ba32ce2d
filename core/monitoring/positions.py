"""PositionMonitor (spec 4.2A, 4.2B, 4.3A): the book as the broker holds it, with greeks,
the underlying, P&L against the entry premium and days to expiration; alerts; snapshots.

Alerts: |delta| > DELTA_WARN (0.30) WARNING "Delta elevated", > DELTA_CRITICAL (0.50)
CRITICAL "Delta breach"; underlying down 5% or more from the entry snapshot's price
WARNING, 10% or more CRITICAL (spec 4.2B's acceptance: "5%+", "10%+"). Figures print
with enough precision that a breached limit never reads as equal to it. One alert per
position per kind, at the highest severity that applies; none on missing data (missing
greeks are logged once per position). An alert reaches the notifier when it first
appears or escalates, not on every cycle.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from core.broker.base import BrokerError, OrderRequest, OrderType, Position
from core.clock import new_york
from core.config import MonitoringSettings
from core.db.tables import PositionSnapshot, StagedOrder, Trade
from core.execution.ledger import stopped_on_purpose
from core.models import SEVERITY_ORDER, Alert, Campaign, CampaignLeg, PositionView
from core.risk.figures import pct_vs, vs
from core.risk.margin import clean

if TYPE_CHECKING:
    from core.engine import Engine

log = logging.getLogger("putdesk.monitoring.positions")

#: What-ifs in flight at once for the positions' margins: a large book must not send
#: hundreds of requests together (IBKR paces messages; each what-if takes an order id).
MARGIN_WHATIFS_AT_ONCE = 4

#: Positions whose quotes are asked at once: each holds two market-data lines (the
#: option and its underlying) while its first ticks come (IBKR allows 100 lines by
#: default; the adapter paces the messages). One at a time, a 30-position book waited
#: for 60 quotes in turn at every refresh.
QUOTES_AT_ONCE = 8

#: A position's margin figure is reused while its contracts, the account and its
#: underlying (within MARGIN_REUSE_MOVE of the price it was asked at) stay the same, for at
#: most MARGIN_REUSE_SECONDS: a refresh runs on every book change, `r` and each monitor
#: cycle, and IBKR paces what-ifs like any message (error 100 past 50 a second), each one
#: taking an order id. A failed what-if is not kept: the next refresh asks again.
MARGIN_REUSE_SECONDS = 60.0
MARGIN_REUSE_MOVE = 0.01

MARGIN_NOTE = "what-if of closing it"

#: system_state key: the position alerts raised, [position, kind, severity] rows.
RAISED_ALERTS_KEY = "monitor.raised_alerts"


def check_alerts(view: PositionView, s: MonitoringSettings) -> tuple[Alert, ...]:
    alerts: list[Alert] = []
    if view.delta is not None:
        d = abs(view.delta)
        sign = "-" if view.delta < 0 else ""
        if d > s.delta_critical:
            alerts.append(Alert("delta", "CRITICAL", f"Delta breach: {view.symbol} "
                                f"delta={sign}{vs(d, s.delta_critical, 2)} "
                                f"(>{s.delta_critical:.2f}, deep ITM risk)"))
        elif d > s.delta_warn:
            alerts.append(Alert("delta", "WARNING", f"Delta elevated: {view.symbol} "
                                f"delta={sign}{vs(d, s.delta_warn, 2)} (>{s.delta_warn:.2f}, "
                                "thesis weakening)"))
    drop = view.drop_pct
    if drop is not None and view.entry_underlying is not None \
            and view.underlying_price is not None:
        # Float noise must not decide a boundary: (100 - 95) / 100 is 0.05, but
        # (235 - 223.25) / 235 computes as 0.04999999...
        at = round(drop, 9)
        crit, warn = s.underlying_drop_critical_pct, s.underlying_drop_warn_pct
        if at >= crit:
            alerts.append(Alert("underlying_drop", "CRITICAL", f"Underlying {view.symbol} "
                                f"down {pct_vs(drop, crit)} — review position "
                                f"(${view.entry_underlying:.2f} → "
                                f"${view.underlying_price:.2f})"))
        elif at >= warn:
            alerts.append(Alert("underlying_drop", "WARNING", f"Underlying {view.symbol} down "
                                f"{pct_vs(drop, warn)} from entry (${view.entry_underlying:.2f}"
                                f" → ${view.underlying_price:.2f})"))
    return tuple(alerts)


@dataclass(frozen=True)
class _MarginFigure:
    """A position's margin from the broker's what-if, with what it was asked on."""
    contracts: int
    underlying: float
    account: str
    at: datetime
    margin: float

    def fits(self, view: PositionView, account: str, now: datetime) -> bool:
        price = view.underlying_price
        return (self.contracts == view.contracts and self.account == account
                and price is not None
                and abs(price - self.underlying) <= MARGIN_REUSE_MOVE * self.underlying
                and timedelta(0) <= now - self.at < timedelta(seconds=MARGIN_REUSE_SECONDS))


def match_trade(position: Position, trades: Sequence[Trade]) -> Trade | None:
    c = position.contract
    if c is None:
        return None
    return next((t for t in trades if t.status == "OPEN" and t.symbol == c.symbol
                 and t.strike == c.strike and t.expiration == c.expiration
                 and t.right == c.right), None)


class PositionMonitor:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings.monitoring
        self.views: tuple[PositionView, ...] = ()
        self.stocks: tuple[Position, ...] = ()
        #: (position, kind) -> severity last raised; None until read from the database,
        #: where it is kept so that a restart does not raise every alert again.
        self._raised: dict[tuple[str, str], str] | None = None
        self._no_greeks: set[str] = set()  # positions last seen without a delta
        self._no_margin: set[str] = set()  # positions last seen without a margin figure
        self._margins: dict[str, _MarginFigure] = {}  # position -> its last what-if figure

    async def refresh(self, notify: bool = True) -> tuple[PositionView, ...]:
        """`notify=False` (a one-shot CLI look) computes alerts without raising them."""
        engine = self.engine
        broker = engine.broker
        positions = await broker.positions()
        trades = await asyncio.to_thread(engine.trades.open_trades)
        today = new_york(engine.clock.now()).date()
        no_greeks: set[str] = set()
        quoting = asyncio.Semaphore(QUOTES_AT_ONCE)

        async def look(p: Position) -> PositionView:
            c = p.contract
            assert c is not None
            trade = match_trade(p, trades)
            snapshot = (await asyncio.to_thread(engine.trades.entry_snapshot, trade.id)
                        if trade is not None else None)
            bid = ask = mark = delta = theta = iv = underlying = None
            mark_source = ""
            async with quoting:
                try:
                    quote = await broker.option_quote(c)
                except BrokerError as exc:
                    log.warning("Market data for %s unavailable: %s", c.key, exc)
                else:
                    bid, ask, delta, iv = quote.bid, quote.ask, quote.delta, quote.iv
                    theta = quote.theta
                    mark = quote.mid if quote.mid is not None else quote.last
                    mark_source = ("mid" if quote.mid is not None
                                   else "last" if quote.last is not None else "")
                    if delta is None:
                        no_greeks.add(c.key)
                        if c.key not in self._no_greeks:  # once, not every cycle
                            log.warning("Greeks unavailable for %s: delta alert not "
                                        "checked, no roll proposed until they return", c.key)
                    # The option's own quote stands without its underlying's price: the
                    # exits and the delta alert need only the option.
                    try:
                        underlying = await broker.underlying_price(c.symbol)
                    except BrokerError as exc:
                        log.warning("Underlying price for %s unavailable: %s", c.key, exc)
            view = PositionView(
                position_id=c.key, contract=c, quantity=int(p.quantity),
                entry_price=trade.entry_price if trade is not None else p.avg_cost,
                trade_id=trade.id if trade is not None else None,
                entry_date=new_york(trade.entry_time).date() if trade is not None else None,
                entry_underlying=snapshot.underlying_price if snapshot is not None else None,
                roll_count=trade.roll_count if trade is not None else 0,
                dte=(c.expiration - today).days, bid=bid, ask=ask, mark=mark, delta=delta,
                iv=iv, underlying_price=underlying, theta=theta, mark_source=mark_source)
            return replace(view, alerts=check_alerts(view, self.settings))

        views = list(await asyncio.gather(*(
            look(p) for p in positions
            if p.sec_type == "OPT" and p.contract is not None and p.quantity < 0)))
        extras = await asyncio.to_thread(self._ledger_state, views)
        asking = asyncio.Semaphore(MARGIN_WHATIFS_AT_ONCE)
        account = broker.info().account_id
        known = {v.position_id: self._margins[v.position_id] for v in views
                 if v.position_id in self._margins}  # positions gone are forgotten

        async def margin(view: PositionView) -> tuple[float | None, str]:
            kept = known.get(view.position_id)
            if kept is not None and kept.fits(view, account, engine.clock.now()):
                return kept.margin, MARGIN_NOTE
            known.pop(view.position_id, None)
            async with asking:
                asked_at = engine.clock.now()
                figure, note = await self._margin(view)
            if figure is not None and view.underlying_price is not None:
                known[view.position_id] = _MarginFigure(view.contracts, view.underlying_price,
                                                        account, asked_at, figure)
            return figure, note

        margins = await asyncio.gather(*(margin(v) for v in views))
        self._margins = known
        views = [replace(v, exit_state=extras[v.position_id][0],
                         campaign=extras[v.position_id][1], margin=margin, margin_note=note)
                 for v, (margin, note) in zip(views, margins, strict=True)]
        views.sort(key=lambda v: (-SEVERITY_ORDER.get(v.worst or "INFO", 0)
                                  - (1 if v.alerts else 0), v.dte, v.symbol))
        self.views = tuple(views)
        self._no_greeks = no_greeks
        self.stocks = tuple(p for p in positions if p.sec_type == "STK")
        saved = await asyncio.to_thread(self._save, views)
        if saved:
            log.info("Position snapshots saved: %d of %d", saved, len(views))
        if notify:
            if self._raised is None:
                self._raised = await asyncio.to_thread(self._load_raised)
            before = self._raised
            self._raise_alerts(views)
            if self._raised != before:
                await asyncio.to_thread(self._store_raised, self._raised)
        return self.views

    async def _margin(self, view: PositionView) -> tuple[float | None, str]:
        """The broker's maintenance margin for the position: the what-if of buying it all
        back, before minus after (the notes' margin authority; IBKR reports no margin per
        position). None with the reason when the broker does not say; never an estimate."""
        # At the ask, a price on the option's tick grid, where there is one: IBKR may
        # refuse a market order for an option outside regular hours, what-if included.
        ref = f"whatif-margin-{uuid.uuid4().hex[:12]}"
        order = (OrderRequest("BUY", view.contracts, ref, view.contract,
                              order_type=OrderType.LIMIT, limit_price=view.ask)
                 if view.ask is not None and view.ask > 0
                 else OrderRequest("BUY", view.contracts, ref, view.contract,
                                   order_type=OrderType.MARKET))
        try:
            wi = await asyncio.wait_for(self.engine.broker.what_if(order),
                                        self.engine.settings.risk.whatif_timeout_seconds)
        except TimeoutError:
            reason = "the broker's what-if did not answer in time"
        except BrokerError as exc:
            reason = f"the broker's what-if failed: {exc}"
        else:
            before, after = clean(wi.maint_margin_before), clean(wi.maint_margin_after)
            if before is not None and after is not None:
                self._no_margin.discard(view.position_id)
                return before - after, MARGIN_NOTE
            reason = "the broker's what-if left the maintenance margin unset"
        if view.position_id not in self._no_margin:  # once per outage, not every cycle
            self._no_margin.add(view.position_id)
            log.warning("Margin of %s unknown: %s", view.position_id, reason)
        return None, reason

    def _load_raised(self) -> dict[tuple[str, str], str]:
        try:
            stored = self.engine.state_repo.get(RAISED_ALERTS_KEY)
            rows = json.loads(stored[0]) if stored is not None else []
            return {(str(p), str(k)): str(sev) for p, k, sev in rows
                    if sev in SEVERITY_ORDER}
        except Exception:
            # Unreadable memory: every current alert is raised once more (named, not lost).
            log.exception("Raised position alerts not read: current ones are raised again")
            return {}

    def _store_raised(self, raised: dict[tuple[str, str], str]) -> None:
        try:
            self.engine.state_repo.set(
                RAISED_ALERTS_KEY, json.dumps(sorted([p, k, sev] for (p, k), sev
                                                     in raised.items())),
                self.engine.wall_clock.now())
        except Exception:
            log.exception("Raised position alerts not saved: a restart may raise them again")

    def _ledger_state(self, views: list[PositionView]
                      ) -> dict[str, tuple[str, Campaign | None]]:
        """Per position: its exit state from the order ledger (a close working, or the
        last one stuck today) and, for a rolled position, its campaign."""
        engine = self.engine
        today = new_york(engine.clock.now()).date()
        latest: dict[str, StagedOrder] = {}
        for row in engine.staged.list(None, kinds=("close",)):
            if row.position_id is not None:
                latest[row.position_id] = row  # oldest first: the last one wins
        out: dict[str, tuple[str, Campaign | None]] = {}
        for v in views:
            state = ""
            last = latest.get(v.position_id)
            if last is not None and last.status in ("SENDING", "WORKING", "UNKNOWN"):
                state = f"CLOSING at ${last.last_limit or last.limit_price:.2f}"
            elif (last is not None and last.status in ("REJECTED", "CANCELLED", "PARTIAL")
                  and new_york(last.updated_at).date() == today
                  and not stopped_on_purpose(last.message)):
                state = f"EXIT STUCK: {(last.message or last.status).split(' · ')[0]}"
            out[v.position_id] = (state, self._campaign(v.trade_id))
        return out

    def _campaign(self, trade_id: str | None) -> Campaign | None:
        trades = self.engine.trades
        chain: list[Trade] = []
        trade = trades.get(trade_id) if trade_id else None
        while trade is not None and len(chain) < 50:
            chain.append(trade)
            trade = trades.get(trade.rolled_from_trade_id) if trade.rolled_from_trade_id \
                else None
        if len(chain) < 2:
            return None
        return Campaign(tuple(
            CampaignLeg(t.strike, t.expiration, t.contracts, t.entry_price,
                        t.exit_price if t.status != "OPEN" else None, t.realized_pnl,
                        t.commission or 0.0) for t in reversed(chain)))

    def _save(self, views: list[PositionView]) -> int:
        """Upsert on the position id with the real trade id, expiration and entry date
        (spec 4.3A); counts only rows actually written."""
        engine = self.engine
        now = engine.clock.now()
        written = 0
        for v in views:
            row = PositionSnapshot(position_id=v.position_id, trade_id=v.trade_id,
                                   symbol=v.symbol, right=v.contract.right,
                                   strike=v.contract.strike, expiration=v.contract.expiration,
                                   entry_date=v.entry_date, contracts=v.contracts,
                                   option_price=v.mark, delta=v.delta,
                                   underlying_price=v.underlying_price, pnl=v.pnl, dte=v.dte,
                                   updated_at=now)
            try:
                if engine.snapshots.upsert(row):
                    written += 1
            except Exception:
                log.exception("Position snapshot for %s not saved", v.position_id)
        return written

    def _raise_alerts(self, views: list[PositionView]) -> None:
        current: dict[tuple[str, str], str] = {}
        for v in views:
            for a in v.alerts:
                key = (v.position_id, a.kind)
                current[key] = a.severity
                before = (self._raised or {}).get(key)
                if before is None or SEVERITY_ORDER[a.severity] > SEVERITY_ORDER[before]:
                    self.engine.alert(a.severity, a.message, "alert", symbol=v.symbol,
                                      data={"position_id": v.position_id, "kind": a.kind})
        self._raised = current
