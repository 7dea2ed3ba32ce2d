"""Reconciliation: on start and after every reconnect, the broker's open orders and
today's fills are matched to the staged orders in the database by orderRef.

- a staged order the broker has (working or filled) gets the broker's status; fills not
  yet recorded become trades;
- a staged order that was sent (SENDING/UNKNOWN/WORKING) but the broker does not know is
  reported and marked REJECTED: it is never re-sent on its own — the operator re-stages;
- PutDesk orders at the broker that the database does not know are reported.
Nothing is placed here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.broker.base import BrokerError, Fill, OrderState
from core.models import OrderResult

if TYPE_CHECKING:
    from core.engine import Engine

log = logging.getLogger("putdesk.execution.reconcile")

REF_PREFIX = "putdesk-"
SENT = ("SENDING", "UNKNOWN", "WORKING")


@dataclass
class ReconcileReport:
    matched: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    missing_at_broker: list[str] = field(default_factory=list)
    unknown_at_broker: list[str] = field(default_factory=list)
    trades_recorded: list[str] = field(default_factory=list)
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
                f"{len(self.missing_at_broker)} missing at the broker, "
                f"{len(self.unknown_at_broker)} unknown to PutDesk"
                + (f"; stock without a put trade: {', '.join(self.stock_without_trades)}"
                   if self.stock_without_trades else ""))

    def as_dict(self) -> dict[str, object]:
        return {"matched": self.matched, "updated": self.updated,
                "missing_at_broker": self.missing_at_broker,
                "unknown_at_broker": self.unknown_at_broker,
                "trades_recorded": self.trades_recorded,
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
                                         if o.order_ref.startswith(REF_PREFIX)}
        fills_by_ref: dict[str, list[Fill]] = defaultdict(list)
        for f in fills:
            if f.order_ref.startswith(REF_PREFIX):
                fills_by_ref[f.order_ref].append(f)
        rows = await asyncio.to_thread(engine.staged.list, None)
        known = {r.order_ref for r in rows}
        for row in rows:
            ref = row.order_ref
            state, got = by_ref.get(ref), fills_by_ref.get(ref, [])
            if state is None and not got:
                if row.status in SENT:
                    report.missing_at_broker.append(ref)
                    await asyncio.to_thread(
                        engine.staged.set_status, row.id, "REJECTED", engine.clock.now(),
                        "Not found at the broker after reconnect: not sent again. Check "
                        "TWS, then stage it again if you still want it.")
                continue
            report.matched.append(ref)
            filled = sum(f.quantity for f in got)
            if state is not None:
                filled = max(filled, state.filled)
            status = ("FILLED" if filled >= row.contracts else
                      "WORKING" if state is not None and not state.status.is_done else
                      "PARTIAL" if filled > 0 else "CANCELLED")
            if status != row.status or filled != row.filled:
                report.updated.append(ref)
                row.status, row.filled = status, filled
                row.message = f"Reconciled with the broker: {status.lower()}"
                if state is not None:
                    row.broker_order_id, row.perm_id = state.order_id, state.perm_id
                if got:
                    row.avg_fill_price = (sum(f.price * f.quantity for f in got)
                                          / sum(f.quantity for f in got))
                elif state is not None and state.avg_fill_price is not None:
                    row.avg_fill_price = state.avg_fill_price
                row.updated_at = engine.clock.now()
                row = await asyncio.to_thread(engine.staged.save, row)
            if filled > 0 and row.trade_id is None:
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
