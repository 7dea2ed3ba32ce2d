"""ExitManager: what to do with each short put, and closing through the execution path.

Rules, in order (each decision carries its reason):
1. time exit — DTE at or below TIME_EXIT_DTE: close;
2. profit target — PROFIT_TARGET_PCT (50%) of the premium captured: close;
3. stop loss — a loss of STOP_LOSS_PCT (200%) of the premium: close, unless a roll
   proposal is waiting for the operator (then the operator decides, and is alerted);
4. approaching the stop — a loss of ROLL_TRIGGER_LOSS_PCT (150%): propose a roll when one
   is allowed (|delta| < ROLL_MAX_DELTA, fewer than MAX_ROLLS rolls) and viable; when it
   is not, or the operator rejected it, close (spec 5.3's named tests).
Closes are BUY limit orders through the adaptive executor: market hours and the spread
rule apply. Automatic closes do not run while trading is halted; the operator's close
and exit-all (confirmed) do, since they only reduce risk.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

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
        self._closing: set[str] = set()

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

    async def close(self, v: PositionView, reason: str, actor: str) -> OrderResult:
        """BUY to close through the adaptive executor; the trade is closed on a fill."""
        engine = self.engine
        if v.position_id in self._closing:
            return OrderResult("REJECTED", "A close for this position is already working", "",
                               v.contracts, action="BUY")
        closed = engine.executor.market_gate(dry_run=False)
        if closed is not None:
            return OrderResult("REJECTED", closed, "", v.contracts, action="BUY")
        self._closing.add(v.position_id)
        ref = f"putdesk-close-{uuid.uuid4().hex[:12]}"
        try:
            log.warning("Closing %s x%d: %s (%s)", v.position_id, v.contracts, reason, actor)
            result = await engine.adaptive.place_order(v.contract, v.contracts, None, ref,
                                                       action="BUY")
        finally:
            self._closing.discard(v.position_id)
        text = f"Close {v.position_id}: {result.outcome} — {result.reason} ({reason})"
        await asyncio.to_thread(engine.audit_event, "exit", text,
                                "INFO" if result.success else "WARNING", actor, v.symbol,
                                {**result.as_dict(), "rule": reason})
        if result.filled > 0 and v.trade_id is not None:
            await asyncio.to_thread(self._close_trade, v, result, reason)
        if result.filled > 0:
            engine.alert("WARNING" if "stop" not in reason else "CRITICAL",
                         f"Closed {v.position_id} x{result.filled} at "
                         f"${result.avg_fill_price or 0:.2f}: {reason}", "exit", symbol=v.symbol)
        return result

    def _close_trade(self, v: PositionView, result: OrderResult, reason: str) -> None:
        engine = self.engine
        trade = engine.trades.get(v.trade_id or "")
        if trade is None:
            return
        price = result.avg_fill_price or 0.0
        if result.filled >= trade.contracts:
            trade.status = "CLOSED"
            trade.exit_price, trade.exit_time = price, engine.clock.now()
            trade.exit_reason = reason
            trade.realized_pnl = (trade.entry_price - price) * 100 * trade.contracts - (
                result.commission or 0.0) - (trade.commission or 0.0)
        else:
            trade.contracts -= result.filled  # partly closed: the rest stays open
        trade.updated_at = engine.wall_clock.now()
        engine.trades.update(trade)

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
