"""ExitManager: what to do with each short put, and closing through the execution path.

Rules, in order (each decision carries its reason):
1. time exit — DTE at or below TIME_EXIT_DTE: close;
2. profit target — PROFIT_TARGET_PCT (50%) of the premium captured: close;
3. stop loss — a loss of STOP_LOSS_PCT (200%) of the premium: close, unless a roll
   proposal is waiting for the operator (then the operator decides, and is alerted);
4. approaching the stop — a loss of ROLL_TRIGGER_LOSS_PCT (150%): propose a roll when one
   is allowed (|delta| < ROLL_MAX_DELTA, fewer than MAX_ROLLS rolls) and viable; when it
   is not, or the operator rejected it, close (spec 5.3's named tests).
Closes are BUY limit orders through the adaptive executor, with the close price policy
(no entry spread rule: from one tick above the mid to the ask; a put bid at 0 is bought
back too, unless EXIT_ZERO_BID_ACTION=let_expire for a profit or time exit). Each close
is an order-ledger row keyed by its position, so across every PutDesk process one
position has at most one close working. The monitor starts closes as tasks of their own
and goes on monitoring while they work. A close that ends without buying everything back
is EXIT STUCK on its position (one alert, until a close succeeds). Automatic closes do not
run while trading is halted; the operator's close and exit-all (confirmed) do, since they
only reduce risk; a close already working when a halt lands keeps working.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from core.execution.ledger import NewOrder, stopped_on_purpose
from core.models import OrderResult, PositionView

if TYPE_CHECKING:
    from core.engine import Engine

log = logging.getLogger("putdesk.monitoring.exits")

ExitAction = Literal["hold", "close", "roll", "wait"]


@dataclass(frozen=True)
class ExitDecision:
    view: PositionView
    action: ExitAction
    rule: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"position_id": self.view.position_id, "symbol": self.view.symbol,
                "action": self.action, "rule": self.rule, "reason": self.reason}


class ExitManager:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.exits = engine.settings.exits
        self.rolls = engine.settings.rolls
        self._tasks: dict[str, asyncio.Task[OrderResult]] = {}  # position_id -> close

    @property
    def closing(self) -> list[str]:
        """Positions this process is closing now."""
        return [k for k, t in self._tasks.items() if not t.done()]

    def start_close(self, v: PositionView, reason: str, actor: str) -> bool:
        """Close in a task of its own (the monitor goes on); False if one is running."""
        running = self._tasks.get(v.position_id)
        if running is not None and not running.done():
            return False
        task = asyncio.ensure_future(self.close(v, reason, actor))
        task.set_name(f"close {v.position_id}")
        self._tasks[v.position_id] = task
        task.add_done_callback(self._close_done)
        return True

    def _close_done(self, task: asyncio.Task[OrderResult]) -> None:
        for key, t in list(self._tasks.items()):
            if t is task:
                del self._tasks[key]
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("close task %s failed", task.get_name(), exc_info=exc)
            from sqlalchemy.exc import SQLAlchemyError

            if isinstance(exc, SQLAlchemyError):
                self.engine.database_fault(exc, f"running {task.get_name()}")

    async def settled(self) -> None:
        """Wait until every close this process started has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    def evaluate(self, v: PositionView, *, roll_pending: bool = False,
                 roll_rejected: bool = False) -> ExitDecision:
        e = self.exits
        if v.dte <= e.time_exit_dte:
            return ExitDecision(v, "close", "time_exit",
                                f"{v.dte} DTE at or below the time exit ({e.time_exit_dte})")
        loss = v.loss_multiple
        if loss is None:
            return ExitDecision(v, "hold", "no_data", "No option price: no exit decision")
        if -loss >= e.profit_target_pct:
            return ExitDecision(v, "close", "profit_target",
                                f"{-loss:.0%} of the premium captured (target "
                                f"{e.profit_target_pct:.0%})")
        if loss >= e.stop_loss_pct:
            if roll_pending:
                return ExitDecision(v, "wait", "stop_loss",
                                    f"Loss {loss:.0%} of premium is past the stop "
                                    f"({e.stop_loss_pct:.0%}); a roll proposal waits for "
                                    "the operator")
            return ExitDecision(v, "close", "stop_loss", f"Loss {loss:.0%} of premium "
                                f"reached the stop ({e.stop_loss_pct:.0%})")
        if loss >= self.rolls.trigger_loss_pct:
            if roll_pending:
                return ExitDecision(v, "wait", "roll", "A roll proposal waits for the operator")
            blocked = self.roll_blocker(v)
            if roll_rejected:
                blocked = "the operator rejected the roll"
            if blocked is None:
                return ExitDecision(v, "roll", "roll", f"Loss {loss:.0%} of premium "
                                    f"approaches the stop: look for a net-credit roll")
            return ExitDecision(v, "close", "stop_approach", f"Loss {loss:.0%} of premium "
                                f"approaches the stop and no roll: {blocked}")
        return ExitDecision(v, "hold", "hold", "Within the exit rules")

    def roll_blocker(self, v: PositionView) -> str | None:
        r = self.rolls
        if v.roll_count >= r.max_rolls:
            return f"already rolled {v.roll_count} times (max {r.max_rolls})"
        if v.delta is None:
            return "delta unavailable"
        if abs(v.delta) >= r.max_delta:
            return f"|delta| {abs(v.delta):.2f} at or above {r.max_delta:.2f}"
        return None

    def zero_bid_hold(self, v: PositionView, rule: str) -> str | None:
        """EXIT_ZERO_BID_ACTION=let_expire: a profit or time exit of a put nobody bids
        for is left to expire (a stop always buys back). The reason, or None."""
        if (self.exits.zero_bid_action == "let_expire" and rule in ("profit_target",
                                                                     "time_exit")
                and v.bid is not None and v.bid <= 0):
            return ("bid is 0: left to expire worthless (EXIT_ZERO_BID_ACTION=let_expire), "
                    "not bought back")
        return None

    async def close(self, v: PositionView, reason: str, actor: str) -> OrderResult:
        """BUY to close through the adaptive executor, as an order-ledger row claimed by
        this process; the trade is closed (or reduced, its P&L realised) on fills."""
        engine = self.engine
        closed = engine.executor.market_gate(dry_run=False)
        if closed is not None:
            return OrderResult("REJECTED", closed, "", v.contracts, action="BUY")
        c = v.contract
        key = f"close:{v.position_id}"
        row = await asyncio.to_thread(engine.ledger.open, NewOrder(
            kind="close", symbol=c.symbol, contracts=v.contracts, action="BUY",
            limit_price=v.mark or 0.0, active_key=key, strike=c.strike,
            expiration=c.expiration, right=c.right, position_id=v.position_id,
            trade_id=v.trade_id, detail={"reason": reason, "actor": actor},
            message=f"Closing: {reason}"), "putdesk-close-")
        if row is None:
            holder = await asyncio.to_thread(engine.ledger.holder, key)
            who = f" ({holder.order_ref}, {holder.sender})" if holder is not None else ""
            return OrderResult("REJECTED", f"A close for this position is already "
                               f"working{who}", "", v.contracts, action="BUY")
        engine.orders_changed()
        log.warning("Closing %s x%d: %s (%s, %s)", v.position_id, v.contracts, reason, actor,
                    row.order_ref)
        try:
            result = await engine.adaptive.place_order(
                c, v.contracts, None, row.order_ref, action="BUY",
                on_progress=engine.executor.progress_writer(row.id))
        except BaseException:
            # Never leave the row claimed by an order that was not followed to its end.
            await engine.executor.settle_row(row.id, OrderResult(
                "UNKNOWN", "Close interrupted: reconciliation settles it", row.order_ref,
                v.contracts, action="BUY"))
            raise
        await self.record_close(v, row.id, result, reason, actor)
        return result

    async def record_close(self, v: PositionView, row_id: str, result: OrderResult,
                           reason: str, actor: str) -> None:
        """A close's outcome: its ledger row, the trade, the audit, and EXIT STUCK."""
        engine = self.engine
        previous = await asyncio.to_thread(self._last_close_outcome, v.position_id, row_id)
        saved = await engine.executor.settle_row(row_id, result)
        text = f"Close {v.position_id}: {result.outcome} — {result.reason} ({reason})"
        await asyncio.to_thread(engine.audit_event, "exit", text,
                                "INFO" if result.success else "WARNING", actor, v.symbol,
                                {**result.as_dict(), "rule": reason})
        if result.filled > 0 and v.trade_id is not None:
            realized = await asyncio.to_thread(self._close_trade, v, result, reason)
            if saved is not None and realized is not None:
                saved.realized_pnl = realized
                await asyncio.to_thread(engine.staged.save, saved)
        if result.filled > 0:
            urgent = "stop" in reason or "exit-all" in reason
            engine.alert("CRITICAL" if urgent else "INFO",
                         f"Closed {v.position_id} x{result.filled} at "
                         f"${result.avg_fill_price or 0:.2f}: {reason}", "exit", symbol=v.symbol)
        # Stuck: said once per streak (unless the previous close of this position already
        # ended stuck); the Positions row shows it until a close succeeds.
        if (result.filled < v.contracts and result.outcome != "WORKING"
                and not stopped_on_purpose(result.reason)
                and previous not in ("REJECTED", "CANCELLED", "PARTIAL", "UNKNOWN")):
            engine.alert("CRITICAL", f"EXIT STUCK: {v.position_id}: {result.reason} "
                             f"({reason})", "exit_stuck", symbol=v.symbol)

    def _last_close_outcome(self, position_id: str, excluding: str) -> str | None:
        rows = [r for r in self.engine.staged.list(None, kinds=("close",))
                if r.position_id == position_id and r.id != excluding]
        return rows[-1].status if rows else None

    def _close_trade(self, v: PositionView, result: OrderResult, reason: str) -> float | None:
        """Fills of a close realise P&L on the trade; all of it bought back closes it, a
        part reduces it and keeps what that part realised. Returns this close's P&L."""
        engine = self.engine
        trade = engine.trades.get(v.trade_id or "")
        if trade is None:
            return None
        price = result.avg_fill_price or 0.0
        filled = min(result.filled, trade.contracts)
        # Commission of the sale is charged once, when the trade is first realised.
        sale_commission = (trade.commission or 0.0) if trade.realized_pnl is None else 0.0
        part = ((trade.entry_price - price) * 100 * filled - (result.commission or 0.0)
                - sale_commission)
        trade.realized_pnl = (trade.realized_pnl or 0.0) + part
        if filled >= trade.contracts:
            trade.status = "CLOSED"
            trade.exit_price, trade.exit_time = price, engine.clock.now()
            trade.exit_reason = reason
        else:
            trade.contracts -= filled  # partly closed: the rest stays open
            log.warning("Trade %s partly closed: %d bought back at $%.2f, %d still open "
                        "(realised so far $%.2f)", trade.id, filled, price, trade.contracts,
                        trade.realized_pnl)
        trade.updated_at = engine.wall_clock.now()
        engine.trades.update(trade)
        return part

    async def exit_all(self, actor: str) -> list[tuple[PositionView, OrderResult]]:
        """Emergency: close every short put now (the caller has confirmed)."""
        engine = self.engine
        engine.refuse_if_read_only("exit all")
        views = await engine.monitor.refresh()
        engine.alert("CRITICAL", f"EXIT ALL requested by {actor}: closing {len(views)} "
                     "position(s)", "exit_all")
        results = await asyncio.gather(*(self.close(v, "emergency exit-all", actor)
                                         for v in views))
        return list(zip(views, results, strict=True))
