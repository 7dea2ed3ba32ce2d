"""Reconciliation: on start and after every reconnect, the broker's open orders and
today's fills are matched to the staged orders in the database by orderRef.

- a staged order the broker has (working or filled) gets the broker's status; fills not
  yet recorded become trades;
- a staged order that was sent (SENDING/UNKNOWN/WORKING) but the broker does not know is
  reported and marked REJECTED: it is never re-sent on its own — the operator re-stages;
- an UNKNOWN order (its executor lost the link and stopped following it) that is still
  working at the broker is cancelled: no order is left working with nobody repricing or
  timing it out. What filled is kept; a trade's size follows the broker's fills;
- rows only move forward: a settled row (FILLED, PARTIAL, CANCELLED) is not rewritten
  from a broker view with no more fills, and a sent order is marked missing only if its
  row is still as read — another PutDesk process on the database may be sending it;
- PutDesk orders at the broker that the database does not know are reported.
Nothing is placed here.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from core.broker.base import BrokerError, Fill, OrderState, OrderStatus
from core.models import OrderResult

if TYPE_CHECKING:
    from core.engine import Engine

log = logging.getLogger("putdesk.execution.reconcile")

REF_PREFIX = "putdesk-"
#: Every order PutDesk sends carries "putdesk-" and a ledger row's id (opening sells
#: "putdesk-<id>", exits "putdesk-close-", rolls "putdesk-roll-", "-rollc-", "-rollo-",
#: assigned stock "putdesk-assign-"): all of them are ledger rows.
LEDGER_REF = re.compile(r"^putdesk-(?:[a-z]+-)?[0-9a-f]{12,16}$")
SENT = ("SENDING", "UNKNOWN", "WORKING")
SETTLED = ("FILLED", "PARTIAL", "CANCELLED")


@dataclass
class ReconcileReport:
    matched: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    missing_at_broker: list[str] = field(default_factory=list)
    unknown_at_broker: list[str] = field(default_factory=list)
    trades_recorded: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    stock_without_trades: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def clean(self) -> bool:
        return not (self.missing_at_broker or self.unknown_at_broker or self.error)

    def summary(self) -> str:
        if self.error:
            return f"Reconciliation failed: {self.error}"
        return (f"Reconciled: {len(self.matched)} matched, {len(self.updated)} updated, "
                f"{len(self.trades_recorded)} trade(s) recorded, "
                + (f"{len(self.cancelled)} left working and cancelled, " if self.cancelled
                   else "")
                + f"{len(self.missing_at_broker)} missing at the broker, "
                f"{len(self.unknown_at_broker)} unknown to PutDesk"
                + (f"; stock without a put trade: {', '.join(self.stock_without_trades)}"
                   if self.stock_without_trades else ""))

    def as_dict(self) -> dict[str, object]:
        return {"matched": self.matched, "updated": self.updated,
                "missing_at_broker": self.missing_at_broker,
                "unknown_at_broker": self.unknown_at_broker,
                "trades_recorded": self.trades_recorded, "cancelled": self.cancelled,
                "stock_without_trades": self.stock_without_trades, "error": self.error}


class Reconciler:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def run(self) -> ReconcileReport:
        engine = self.engine
        report = ReconcileReport()
        try:
            orders = await engine.broker.open_orders()
            fills = await engine.broker.fills()
            positions = await engine.broker.positions()
        except BrokerError as exc:
            report.error = str(exc)
            log.error(report.summary())
            return report
        by_ref: dict[str, OrderState] = {o.order_ref: o for o in orders
                                         if LEDGER_REF.match(o.order_ref)}
        fills_by_ref: dict[str, list[Fill]] = defaultdict(list)
        for f in fills:
            if LEDGER_REF.match(f.order_ref):
                fills_by_ref[f.order_ref].append(f)
        rows = await asyncio.to_thread(engine.staged.list, None)
        known = {r.order_ref for r in rows}
        followed = set(engine.adaptive.working()) | set(engine.roll_manager.working())
        for row in rows:
            ref = row.order_ref
            state, got = by_ref.get(ref), fills_by_ref.get(ref, [])
            if row.status in SENT and (ref in followed or (
                    row.sender is not None and row.sender != engine.ledger.sender)):
                # Followed by this process now or by another live one, which settles it;
                # or its sender is gone and it is adopted (Engine.adopt_orphans) and
                # followed to its end. A reconcile must not settle it behind their backs.
                if state is not None or got:
                    report.matched.append(ref)
                continue
            if row.kind != "open":
                # Closes, rolls and stock sales are settled by their follower or adopter
                # (core/execution/adopt.py), with the trades they change; here they are
                # only recognised.
                if state is not None or got:
                    report.matched.append(ref)
                continue
            if state is None and not got:
                # Only if still as read: a second instance's sender may be placing it now.
                if row.status in SENT and await asyncio.to_thread(
                        engine.staged.transition, row.id, row.status, "REJECTED",
                        engine.clock.now(), "Not found at the broker after reconnect: not "
                        "sent again. Check TWS, then stage it again if you still want it."):
                    report.missing_at_broker.append(ref)
                continue
            report.matched.append(ref)
            filled = sum(f.quantity for f in got)
            if state is not None:
                filled = max(filled, state.filled)
            if state is not None and not state.status.is_done and row.status == "UNKNOWN":
                state = await self._cancel_left_working(ref, state, filled, row.contracts,
                                                        report)
            status = ("FILLED" if filled >= row.contracts else
                      "WORKING" if state is not None and not state.status.is_done else
                      "PARTIAL" if filled > 0 else "CANCELLED")
            # A settled row never moves back on an older broker view (a second instance's
            # sender may have written it after this reconcile read the broker).
            behind = row.status in SETTLED and filled <= row.filled
            if not behind and (status != row.status or filled != row.filled):
                report.updated.append(ref)
                row.status, row.filled = status, filled
                row.message = (f"Reconciled with the broker: {status.lower()}" if ref not in
                               report.cancelled else f"Reconciled: left working when the link "
                               f"dropped; the rest cancelled (filled {filled} of "
                               f"{row.contracts})")
                if state is not None:
                    row.broker_order_id, row.perm_id = state.order_id, state.perm_id
                if got:
                    row.avg_fill_price = (sum(f.price * f.quantity for f in got)
                                          / sum(f.quantity for f in got))
                elif state is not None and state.avg_fill_price is not None:
                    row.avg_fill_price = state.avg_fill_price
                row.updated_at = engine.clock.now()
                row = await asyncio.to_thread(engine.staged.save, row)
            trade = (await asyncio.to_thread(engine.trades.by_order_ref, ref)
                     if filled > 0 and row.trade_id is not None else None)
            if filled > 0 and (trade is None or trade.contracts < filled):
                # New, or more filled than the trade says (fills while the link was down).
                result = OrderResult("FILLED" if status == "FILLED" else "PARTIAL",
                                     "reconciled", ref, row.contracts,
                                     staged_limit=row.limit_price, filled=filled,
                                     avg_fill_price=row.avg_fill_price,
                                     perm_id=row.perm_id,
                                     commission=sum(f.commission or 0 for f in got) or None)
                await engine.executor.record_trade(row, result, None)
                report.trades_recorded.append(ref)
        traded = {t.symbol for t in await asyncio.to_thread(engine.trades.all)}
        report.stock_without_trades = sorted(
            f"{p.symbol} {p.quantity:g} shares" for p in positions
            if p.sec_type == "STK" and p.symbol not in traded)
        report.unknown_at_broker = sorted(
            ref for ref in {*by_ref, *fills_by_ref} if ref not in known)
        for ref in report.unknown_at_broker:
            log.warning("Reconcile: order %s is at the broker but not in PutDesk's database",
                        ref)
        for ref in report.missing_at_broker:
            log.error("Reconcile: order %s was sent but the broker does not have it; "
                      "marked REJECTED, not re-sent", ref)
        (log.info if report.clean else log.warning)(report.summary())
        if report.updated or report.missing_at_broker or report.trades_recorded:
            engine.orders_changed(report.summary())
        await asyncio.to_thread(engine.audit_event, "reconcile", report.summary(),
                                "INFO" if report.clean else "WARNING", "reconciler", None,
                                report.as_dict())
        return report

    async def _cancel_left_working(self, ref: str, state: OrderState, filled: int,
                                   contracts: int, report: ReconcileReport) -> OrderState:
        """Cancel what is left of an order nobody follows any more; its state as done
        when the broker took the cancel, unchanged (still working) when it did not."""
        try:
            await self.engine.broker.cancel_order(state.order_id)
        except BrokerError as exc:
            log.error("Reconcile: order %s is still working with nobody following it and "
                      "could not be cancelled (%s): cancel it in TWS", ref, exc)
            return state
        report.cancelled.append(ref)
        log.warning("Reconcile: order %s was left working when the link dropped: the rest "
                    "cancelled (filled %d of %d)", ref, filled, contracts)
        return replace(state, status=OrderStatus.CANCELLED)
