"""Following an order whose sender is gone (killed, crashed, its machine lost).

The adopter has already taken the row over (the ledger's compare-and-set on the claim).
It asks the broker what became of the order (every client's open orders, today's fills)
and then:
- the broker never got it (the sender died between its claim and the send): REJECTED,
  never sent again on its own;
- it is done at the broker: the row settles to what filled (a filled opening sell
  becomes a trade; a filled close closes the trade);
- it still works: an opening sell while trading is halted is cancelled at once; any
  other order is walked on from the step it had reached and cancelled at its timeout,
  counted from when it was first sent; a roll combo or a stock sale is not walked on by
  an adopter: it is cancelled and its fills recorded, and the operator is told.
If the broker will not let this process change the order (at IBKR only the client id
that placed it may), the operator is told to cancel it in TWS, and the row stays with
this process until the broker reports it done.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from core.broker.base import Action, BrokerError, Fill, OptionContract, OrderState
from core.db.tables import StagedOrder
from core.models import OrderResult

if TYPE_CHECKING:
    from core.engine import Engine

log = logging.getLogger("putdesk.execution.adopt")


async def follow_adopted(engine: Engine, row: StagedOrder) -> None:
    executor, adaptive = engine.executor, engine.adaptive
    try:
        state, fills = await adaptive.existing(row.order_ref)
    except BrokerError as exc:
        log.error("Adopted order %s: the broker cannot say what became of it (%s); "
                  "following it again at the next heartbeat", row.order_ref, exc)
        await asyncio.to_thread(engine.ledger.update, row.id, "UNKNOWN",
                                f"Adopted; broker unavailable: {exc}")
        return
    action: Action = "BUY" if row.action == "BUY" else "SELL"
    if state is None and not fills:
        if row.broker_order_id is not None or row.status == "WORKING":
            # The broker acknowledged it once; it works no more and never filled today.
            result = OrderResult("CANCELLED", "Adopted: no longer working at the broker "
                                 "and never filled — cancelled", row.order_ref,
                                 row.contracts, action=action)
        else:
            result = OrderResult("REJECTED", f"Its sender ({row.sender}) stopped before "
                                 "the order reached the broker: not sent, and not sent "
                                 "again on its own", row.order_ref, row.contracts,
                                 action=action)
        await executor.settle_row(row.id, result)
        log.warning("Adopted order %s: %s", row.order_ref, result.reason)
        return
    elapsed = 0.0
    if row.sent_at is not None:
        elapsed = max((engine.clock.now() - row.sent_at).total_seconds(), 0.0)
    if row.kind in ("open", "close") and row.strike is not None and row.expiration is not None:
        contract = OptionContract(row.symbol, row.expiration, row.strike, "P")
        fresh = await asyncio.to_thread(engine.staged.get, row.id)
        asked = fresh.cancel_requested if fresh is not None else None
        result = await adaptive.adopt(contract, row.contracts, row.limit_price if row.kind
                                      == "open" else None, row.order_ref, state, fills,
                                      executor.progress_writer(row.id), elapsed=elapsed,
                                      action=action, reprices=row.reprices,
                                      stop=f"cancelled by {asked}" if asked else None)
    else:
        result = await _cancel_and_settle(engine, row, state, fills)
    if result.outcome == "WORKING":
        # The broker would not let us cancel it (another client id's order at IBKR).
        text = (f"Order {row.order_ref} ({row.kind} {row.symbol}) still works at the broker "
                f"after its sender ({row.sender}) stopped, and this process cannot change "
                "it: cancel it in TWS")
        engine.alert("CRITICAL", text, "order_orphaned", symbol=row.symbol)
        await asyncio.to_thread(engine.ledger.update, row.id, "UNKNOWN", text, result)
        return
    if row.kind == "open":
        fresh = await asyncio.to_thread(engine.staged.get, row.id)
        await executor._finish(fresh or row, result, False)
        if result.filled > 0:
            await engine.verify_post_trade_margin()
    elif row.kind == "close":
        view = next((v for v in engine.state.positions if v.position_id == row.position_id),
                    None)
        if view is not None:
            await engine.exits.record_close(view, row.id, result, "adopted close",
                                            engine.ledger.sender)
        else:
            await executor.settle_row(row.id, result)
    else:
        await executor.settle_row(row.id, result)
        engine.alert("CRITICAL", f"Adopted {row.kind} order {row.order_ref} ({row.symbol}) "
                     f"after its sender stopped: {result.outcome} — {result.reason}; check "
                     "the position", "order_adopted", symbol=row.symbol)
    log.warning("Adopted order %s: %s — %s", row.order_ref, result.outcome, result.reason)


async def _cancel_and_settle(engine: Engine, row: StagedOrder, state: OrderState | None,
                             fills: list[Fill]) -> OrderResult:
    action: Action = "BUY" if row.action == "BUY" else "SELL"
    result = OrderResult("CANCELLED", "", row.order_ref, row.contracts, action=action)
    if state is not None and not state.status.is_done:
        try:
            await engine.broker.cancel_order(state.order_id)
        except BrokerError as exc:
            result.outcome, result.reason = "WORKING", f"cancel refused: {exc}"
            return result
        for _ in range(40):
            current = [o for o in await engine.broker.open_orders()
                       if o.order_ref == row.order_ref]
            if not current or current[0].status.is_done:
                break
            await asyncio.sleep(0.25)
        fills = [f for f in await engine.broker.fills() if f.order_ref == row.order_ref]
    sold = sum(f.quantity for f in fills)
    result.filled = sold
    if sold:
        result.avg_fill_price = sum(f.price * f.quantity for f in fills) / sold
        result.commission = sum(f.commission or 0.0 for f in fills)
    if sold >= row.contracts:
        result.outcome, result.reason = "FILLED", "filled before its sender stopped"
    elif sold:
        result.outcome, result.reason = "PARTIAL", f"filled {sold}; the rest cancelled"
    else:
        result.reason = "cancelled after its sender stopped"
    return result
