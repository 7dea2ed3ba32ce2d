"""Staging: approved opportunities kept as orders to send, and the two-stage flow.

Stage any time (a Sunday evening); at EXECUTION_OPEN_TIME (9:30 ET) + EXECUTION_OPEN_DELAY
_SECONDS on a trading day the engine's scheduler sends every order staged before that
moment — each re-validated with live data first — or the operator sends them on command.
A batch goes out concurrently, every broker request through the shared pacer, and ends
with one post-trade margin verification (spec 2.1B, rapid-fire).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from core.clock import NEW_YORK, new_york
from core.db.session import error_text
from core.db.tables import StagedOrder
from core.execution.ledger import SENT, attempt_text
from core.execution.orders import OPEN_STATUSES
from core.models import OrderResult, RiskDecision

if TYPE_CHECKING:
    from core.engine import Engine

log = logging.getLogger("putdesk.execution.staging")

LAST_RUN_KEY = "execution.last_open_run"


class StagingError(Exception):
    """The operator's request cannot be done; the message says why."""


class Staging:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings.execution
        self._running = False

    @property
    def busy(self) -> bool:
        return self._running

    # --- staging -----------------------------------------------------------------------

    async def stage(self, decision: RiskDecision, actor: str) -> StagedOrder:
        if not decision.approved:
            raise StagingError(f"Not staged: {decision.summary}")
        if decision.preview:
            raise StagingError("Not staged: a preview decision has no what-if margin check")
        opp = decision.opportunity
        if opp.premium is None or opp.premium <= 0:
            raise StagingError("Not staged: no limit price")
        engine = self.engine
        now = engine.clock.now()  # market time: "staged before the open" is in its terms
        order = StagedOrder(created_at=now, updated_at=now, symbol=opp.symbol,
                            strike=opp.strike, expiration=opp.expiration,
                            contracts=opp.contracts, limit_price=opp.premium, order_ref="",
                            actor=actor, decision=json.dumps(decision.as_dict(), default=str))
        order.order_ref = f"putdesk-{order.id[:16]}"
        saved = await asyncio.to_thread(engine.staged.add, order)
        text = f"Staged {opp.label} x{opp.contracts} at ${opp.premium:.2f} ({saved.order_ref})"
        log.info(text)
        await asyncio.to_thread(engine.audit_event, "staged", text, "INFO", actor, opp.symbol,
                                {"staged_id": saved.id, "order_ref": saved.order_ref})
        engine.orders_changed(text)
        return saved

    async def cancel(self, staged_id: str, actor: str) -> StagedOrder:
        """Cancel any order of the ledger (an id or an orderRef): a staged one at once; a
        working one by whoever follows it — this process at once, another PutDesk
        process at its next heartbeat (at IBKR only the client that placed an order may
        change it), and one whose sender is gone is adopted here and cancelled."""
        engine = self.engine
        row = (await asyncio.to_thread(engine.staged.get, staged_id)
               or await asyncio.to_thread(engine.staged.by_ref, staged_id))
        if row is None:
            raise StagingError(f"No order {staged_id}")
        why = f"cancelled by {actor}"
        if row.status in SENT:
            orphans = {r.id for r in await asyncio.to_thread(engine.ledger.orphans)}
            if engine.adaptive.stop(row.order_ref, why) or engine.roll_manager.stop(
                    row.order_ref, why):
                text = f"Cancelling {row.order_ref}"
            elif row.id in orphans:
                if not engine.broker.connected:
                    raise StagingError(f"{row.order_ref}: its sender is gone and the broker "
                                       "is not connected here: cannot cancel it now")
                await asyncio.to_thread(engine.ledger.request_cancel, row.id, actor)
                await engine.adopt_orphans()
                text = f"Adopted {row.order_ref} (its sender is gone) to cancel it"
            else:
                await asyncio.to_thread(engine.ledger.request_cancel, row.id, actor)
                text = (f"Cancel of {row.order_ref} asked: {row.sender} cancels it at its "
                        "next heartbeat")
        elif row.status == "STAGED":
            moved = await asyncio.to_thread(engine.staged.transition, row.id, "STAGED",
                                            "CANCELLED", engine.clock.now(),
                                            f"Cancelled by {actor}")
            if not moved:
                raise StagingError(f"{row.order_ref} was taken by a sender meanwhile: "
                                   "cancel it again")
            text = f"Cancelled staged order {row.order_ref}"
        else:
            raise StagingError(f"{row.order_ref} is {row.status}: nothing to cancel")
        await asyncio.to_thread(engine.audit_event, "staged_cancel", text, "INFO", actor,
                                row.symbol)
        engine.orders_changed(text)
        return row

    # --- execution ---------------------------------------------------------------------

    async def execute(self, ids: list[str] | None = None, *, dry_run: bool | None = None
                      ) -> list[tuple[StagedOrder, OrderResult]]:
        """Send staged orders (all STAGED ones, or `ids`) concurrently; then one post-trade
        margin verification for the batch if anything filled."""
        engine = self.engine
        try:
            rows = await asyncio.to_thread(engine.staged.list, ("STAGED",))
        except SQLAlchemyError as exc:
            engine.database_fault(exc, "reading the staged orders")
            raise StagingError(f"Not sent: database unavailable ({error_text(exc)})") from None
        if ids is not None:
            wanted = set(ids)
            rows = [r for r in rows if r.id in wanted or r.order_ref in wanted]
        if not rows:
            return []
        log.info("Executing %d staged order(s)%s", len(rows),
                 " (dry run)" if (dry_run if dry_run is not None else self.settings.dry_run)
                 else "")
        results = await asyncio.gather(*(engine.executor.execute_trade(
            row, dry_run=dry_run, verify=False) for row in rows), return_exceptions=True)
        out: list[tuple[StagedOrder, OrderResult]] = []
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, SQLAlchemyError):
                # After the claim: the order may be out; reconciliation settles it.
                reason = (f"Database unavailable during the order ({error_text(result)}): "
                          "its outcome could not be recorded; reconciliation settles it")
                log.error("Order %s: %s", row.order_ref, reason)
                engine.database_fault(result, f"recording {row.order_ref}")
                result = OrderResult("UNKNOWN", reason, row.order_ref, row.contracts,
                                     staged_limit=row.limit_price)
            elif isinstance(result, BaseException):
                log.error("Order %s failed: %s", row.order_ref, result, exc_info=result)
                result = OrderResult("REJECTED", f"Internal error: {result}", row.order_ref,
                                     row.contracts, staged_limit=row.limit_price)
            out.append((row, result))
        dry = self.settings.dry_run if dry_run is None else dry_run
        await self._record_attempts(out, dry)
        if any(r.filled > 0 for _row, r in out):
            await engine.verify_post_trade_margin()
        return out

    async def _record_attempts(self, out: list[tuple[StagedOrder, OrderResult]],
                               dry: bool) -> None:
        """An order the attempt left STAGED (a dry run, a halt, a closed market, a
        broker that cannot confirm) keeps what happened in its row's message; an order
        sent, rejected for good or taken by another sender has its own outcome, and a
        row no longer STAGED is never written (the write is conditional)."""
        engine = self.engine
        for row, result in out:
            if not dry and result.outcome != "REJECTED":
                continue
            text = attempt_text(result, dry)
            try:
                await asyncio.to_thread(engine.staged.transition, row.id, "STAGED",
                                        "STAGED", engine.clock.now(), text)
            except SQLAlchemyError as exc:  # the result is still returned and shown
                log.warning("Order %s: could not record %r: %s", row.order_ref, text,
                            error_text(exc))

    # --- the scheduler -------------------------------------------------------------------

    def open_slot(self, now: datetime) -> datetime | None:
        """Today's execution moment if it has passed on a trading day, else None."""
        info = self.engine.calendar.session_at(now)
        if info.session_open is None:
            return None
        hour, minute = (int(x) for x in self.settings.open_time.split(":"))
        slot = datetime.combine(new_york(now).date(), time(hour, minute), NEW_YORK) + timedelta(
            seconds=self.settings.open_delay_seconds)
        return slot if now >= slot and info.allows_orders else None

    async def scheduler_step(self) -> None:
        """Called every engine tick: once per trading day, send what was staged before the
        slot. The slot already run is kept in the database, so a restart does not rerun."""
        if not self.settings.auto_execute or self._running:
            return
        engine = self.engine
        now = engine.clock.now()
        slot = self.open_slot(now)
        if slot is None:
            return
        last = await asyncio.to_thread(engine.state_repo.get, LAST_RUN_KEY)
        if last is not None and datetime.fromisoformat(last[0]) >= slot:
            return
        self._running = True
        try:
            await asyncio.to_thread(engine.state_repo.set, LAST_RUN_KEY, slot.isoformat(),
                                    engine.wall_clock.now())
            if engine.kill_switch.is_halted()[0]:
                log.warning("Open at %s: trading halted, staged orders wait for the next open "
                            "(or send them on command after resuming)",
                            slot.strftime("%H:%M:%S ET"))
                return
            rows = await asyncio.to_thread(engine.staged.list, ("STAGED",))
            due = [r.id for r in rows if r.created_at < slot]
            if not due:
                return
            log.info("Open at %s: executing %d order(s) staged before it",
                     slot.strftime("%H:%M:%S ET"), len(due))
            await self.execute(due)
        finally:
            self._running = False

    async def open_orders(self) -> list[StagedOrder]:
        return await asyncio.to_thread(self.engine.staged.list, OPEN_STATUSES)
