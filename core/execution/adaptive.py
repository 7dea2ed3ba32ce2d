"""AdaptiveOrderExecutor: live quote -> limit, spread and price-stability checks, then a
limit sell that reprices toward the bid in bounded steps and is cancelled after a timeout.

Limit rule: one tick below the mid (tick $0.01 under $3, $0.05 from $3), rounded to the
tick, never below the bid. Reprices: ORDER_REPRICE_STEPS equal steps from that limit down
to the live bid, one every ORDER_REPRICE_INTERVAL_SECONDS; the order is cancelled at
ORDER_TIMEOUT_SECONDS. Every order carries the staged order's orderRef, and before
sending, the broker's open orders and today's fills are searched for it: a retry or a
reconnect adopts the order that is already there instead of placing a second one.

Closes (BUY) have their own price policy, not the entry spread rule: a put bid at 0 or
quoted wide must still be bought back. They start one tick above the mid and walk to the
ask, reaching it on the last reprice step, well before the timeout.

Every working order can be stopped: `stop(order_ref, reason)` (the operator's cancel, a
process shutting down), and an opening sell checks the kill switch (`halted`) before
every step, so a halt cancels it at once instead of repricing it toward a fill.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from core.broker.base import (
    Action,
    Broker,
    BrokerDisconnected,
    BrokerError,
    BrokerEvent,
    Fill,
    FillReceived,
    OptionContract,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderStatusChanged,
    OrderType,
    Quote,
)
from core.broker.pacing import Pacer
from core.config import ExecutionSettings
from core.models import OrderResult

log = logging.getLogger("putdesk.execution.adaptive")
T = TypeVar("T")


def tick_size(price: float) -> float:
    return 0.01 if price < 3.0 else 0.05


def round_to_tick(price: float, down: bool = True) -> float:
    tick = tick_size(price)
    steps = price / tick
    steps = math.floor(steps + 1e-9) if down else math.ceil(steps - 1e-9)
    return round(steps * tick, 2)


def sell_limit(bid: float, ask: float) -> float:
    """One tick below the mid, on the tick grid, never below the bid."""
    mid = (bid + ask) / 2
    return max(bid, round_to_tick(mid - tick_size(mid)))


def buy_limit(bid: float, ask: float) -> float:
    """Closing a short: one tick above the mid, on the tick grid, never above the ask."""
    mid = (bid + ask) / 2
    return min(ask, round_to_tick(mid + tick_size(mid), down=False))


class _Watch:
    """The latest state and the fills of one order, from the broker's events."""

    def __init__(self, broker: Broker, order_ref: str) -> None:
        self.broker = broker
        self.order_ref = order_ref
        self.state: OrderState | None = None
        self.fills: list[Fill] = []
        self.changed = asyncio.Event()
        self.stop_reason: str | None = None  # set: cancel now, for this reason
        broker.add_listener(self._on_event)

    def _on_event(self, event: BrokerEvent) -> None:
        if isinstance(event, OrderStatusChanged) and event.state.order_ref == self.order_ref:
            self.state = event.state
            self.changed.set()
        elif isinstance(event, FillReceived) and event.fill.order_ref == self.order_ref:
            if all(f.exec_id != event.fill.exec_id for f in self.fills):
                self.fills.append(event.fill)
            self.changed.set()

    def close(self) -> None:
        self.broker.remove_listener(self._on_event)

    async def wait(self, seconds: float) -> None:
        self.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout=max(seconds, 0.0))


class AdaptiveOrderExecutor:
    def __init__(self, broker: Broker, settings: ExecutionSettings,
                 pacer: Pacer | None = None,
                 halted: Callable[[], str | None] | None = None) -> None:
        self.broker = broker
        self.settings = settings
        self._pacer = pacer
        #: None while trading may add risk, else the halt's reason (the kill switch).
        self.halted = halted or (lambda: None)
        self._watches: dict[str, tuple[_Watch, str]] = {}  # order_ref -> (watch, action)
        self.idle = asyncio.Event()  # set while no order is being worked
        self.idle.set()

    # --- orders being worked ---------------------------------------------------------

    def working(self) -> list[str]:
        """orderRefs this executor is following now."""
        return list(self._watches)

    def stop(self, order_ref: str, reason: str) -> bool:
        """Cancel a working order at its next step (at once: its wait is woken)."""
        entry = self._watches.get(order_ref)
        if entry is None:
            return False
        watch, _action = entry
        watch.stop_reason = watch.stop_reason or reason
        watch.changed.set()
        return True

    def stop_all(self, reason: str, action: Action | None = None) -> list[str]:
        """Stop every working order (of one action, e.g. SELL: every opening order)."""
        return [ref for ref, (_w, act) in list(self._watches.items())
                if (action is None or act == action) and self.stop(ref, reason)]

    def _follow(self, watch: _Watch, action: Action) -> None:
        self._watches[watch.order_ref] = (watch, action)
        self.idle.clear()

    def _unfollow(self, watch: _Watch) -> None:
        entry = self._watches.get(watch.order_ref)
        if entry is not None and entry[0] is watch:
            del self._watches[watch.order_ref]
        if not self._watches:
            self.idle.set()
        watch.close()

    def _stop_reason(self, watch: _Watch, action: Action) -> str | None:
        if watch.stop_reason is not None:
            return watch.stop_reason
        if action == "SELL":
            why = self.halted()
            if why is not None:
                return f"Trading halted ({why}): an opening order is cancelled, not repriced"
        return None

    async def _paced(self, make: Callable[[], Awaitable[T]]) -> T:
        return await (self._pacer(make) if self._pacer is not None else make())

    # --- checks on the live quote ---------------------------------------------------------

    def check_quote(self, quote: Quote, result: OrderResult) -> bool:
        """Spec 3.2A: spread = (ask - bid) / bid, logged for every attempt; wider than
        MAX_EXECUTION_SPREAD_PCT, no bid, or no quote -> rejected."""
        bid, ask = quote.bid, quote.ask
        result.bid, result.ask = bid, ask
        if bid is None or ask is None or ask <= 0:
            log.warning("Spread check: bid=%s, ask=%s — no live quote", bid, ask)
            result.outcome, result.reason = "REJECTED", "No live quote for the option"
            return False
        if bid <= 0:
            log.warning("Spread check: bid=$%.2f, ask=$%.2f, spread=n/a — WIDE (no bid)",
                        bid, ask)
            result.outcome, result.reason = "REJECTED", "Bid is 0: nobody is paying for this put"
            return False
        spread = (ask - bid) / bid
        result.spread_pct = spread
        limit = self.settings.max_execution_spread_pct
        wide = spread > limit
        log.log(logging.WARNING if wide else logging.INFO,
                "Spread check: bid=$%.2f, ask=$%.2f, spread=%.1f%% — %s", bid, ask,
                spread * 100, "WIDE" if wide else "OK")
        if wide:
            result.outcome = "REJECTED"
            result.reason = f"Spread {spread:.0%} exceeds max {limit:.0%}"
            return False
        return True

    def check_close_quote(self, quote: Quote, result: OrderResult) -> bool:
        """A buy-to-close needs an ask; the bid may be 0 and the spread wide (the entry
        spread rule would leave a stop or a worthless put open)."""
        bid, ask = quote.bid, quote.ask
        result.bid, result.ask = bid, ask
        if ask is None or ask <= 0:
            log.warning("Close quote: bid=%s, ask=%s — no ask, cannot buy back", bid, ask)
            result.outcome, result.reason = "REJECTED", "No ask for the option: cannot buy it back"
            return False
        if bid is not None and bid > 0:
            result.spread_pct = (ask - bid) / bid
        log.info("Close quote: bid=%s, ask=$%.2f, spread=%s — buying back walks to the ask",
                 f"${bid:.2f}" if bid is not None else "none", ask,
                 f"{result.spread_pct:.0%}" if result.spread_pct is not None else "n/a")
        return True

    def check_stability(self, live_limit: float, result: OrderResult) -> bool:
        """Spec 3.2B: the live limit against the staged one."""
        staged = result.staged_limit
        if staged is None or staged <= 0:
            result.outcome = "REJECTED"
            result.reason = (f"Staged limit {staged if staged is not None else 'missing'}: "
                             "price stability cannot be measured")
            log.warning("Price stability: %s", result.reason)
            return False
        deviation = abs(live_limit - staged) / staged
        result.limit_deviation = deviation
        text = (f"live limit ${live_limit:.2f} vs staged ${staged:.2f} "
                f"({deviation:.0%} deviation)")
        if deviation > self.settings.price_deviation_reject_pct:
            result.outcome, result.reason = "REJECTED", f"Price unstable: {text}"
            log.warning("Price unstable: %s — not sent", text)
            return False
        if deviation > self.settings.price_deviation_warn_pct:
            result.warnings.append(f"Price moved: {text}")
            log.warning("Price moved: %s — proceeding", text)
        return True

    # --- the order --------------------------------------------------------------------

    async def existing(self, order_ref: str) -> tuple[OrderState | None, list[Fill]]:
        """What the broker already has under this orderRef (open order, today's fills)."""
        orders = await self._paced(self.broker.open_orders)
        fills = await self._paced(self.broker.fills)
        state = next((o for o in orders if o.order_ref == order_ref), None)
        return state, [f for f in fills if f.order_ref == order_ref]

    async def adopt(self, contract: OptionContract, contracts: int, staged_limit: float | None,
                    order_ref: str, state: OrderState | None, fills: list[Fill],
                    on_progress: Callable[[OrderResult], None] | None = None,
                    elapsed: float = 0.0, action: Action | None = None,
                    reprices: int = 0, stop: str | None = None) -> OrderResult:
        """Follow an order the broker already has under our orderRef (a retry after a
        lost acknowledgement, or an order whose sender died): never a second order, no
        new checks — it is already out. `elapsed`: seconds it has already worked, so its
        timeout still counts from when it was sent."""
        act: Action = action or (state.request.action if state is not None else "SELL")
        result = OrderResult("WORKING", "", order_ref, contracts, staged_limit=staged_limit,
                             action=act, reprices=reprices)
        result.warnings.append("already at the broker: adopted, not sent again")
        log.warning("Order %s is already at the broker: adopting it, not sending again",
                    order_ref)
        watch = _Watch(self.broker, order_ref)
        watch.state, watch.fills = state, list(fills)
        watch.stop_reason = stop  # a cancel asked before it was adopted
        self._follow(watch, act)
        try:
            if state is None or state.status.is_done:
                return self._finish(result, watch, contracts)
            result.order_id, result.perm_id = state.order_id, state.perm_id
            result.limit_price = result.last_limit = state.request.limit_price
            return await self._work(contract, contracts, watch, result, on_progress,
                                    elapsed=elapsed, step=reprices)
        finally:
            self._unfollow(watch)

    async def place_order(self, contract: OptionContract, contracts: int,
                          staged_limit: float | None, order_ref: str, *, dry_run: bool = False,
                          action: Action = "SELL",
                          on_progress: Callable[[OrderResult], None] | None = None
                          ) -> OrderResult:
        """SELL opens at a staged limit (checked for stability); BUY closes a short at
        the live quote (no staged limit: `staged_limit` None skips that check)."""
        result = OrderResult("REJECTED", "", order_ref, contracts, staged_limit=staged_limit,
                             action=action)
        try:
            quote = await self._paced(lambda: self.broker.option_quote(contract))
        except BrokerError as exc:
            result.reason = f"No live quote: {exc}"
            log.warning("Order %s not sent: %s", order_ref, result.reason)
            return result
        if not (self.check_quote if action == "SELL" else self.check_close_quote)(quote, result):
            return result
        assert quote.ask is not None
        limit = (sell_limit(quote.bid or 0.0, quote.ask) if action == "SELL"
                 else buy_limit(max(quote.bid or 0.0, 0.0), quote.ask))
        result.limit_price = result.last_limit = limit
        if staged_limit is not None and not self.check_stability(limit, result):
            return result
        if dry_run:
            result.outcome = "DRY_RUN"
            result.reason = (f"Dry run: would {action} {contracts} {contract.key} at "
                             f"${limit:.2f}")
            log.info(result.reason)
            return result

        watch = _Watch(self.broker, order_ref)
        self._follow(watch, action)
        try:
            return await self._send_and_work(contract, contracts, limit, watch, result,
                                             on_progress)
        finally:
            self._unfollow(watch)

    async def _send_and_work(self, contract: OptionContract, contracts: int, limit: float,
                             watch: _Watch, result: OrderResult,
                             on_progress: Callable[[OrderResult], None] | None) -> OrderResult:
        try:
            state, fills = await self.existing(result.order_ref)
        except BrokerError as exc:
            result.reason = f"Cannot confirm the order is not already at the broker: {exc}"
            log.warning("Order %s not sent: %s", result.order_ref, result.reason)
            return result
        if state is not None or fills:
            self._unfollow(watch)
            return await self.adopt(contract, contracts, result.staged_limit or limit,
                                    result.order_ref, state, fills, on_progress)
        order = OrderRequest(result.action, contracts, result.order_ref, contract,
                             order_type=OrderType.LIMIT, limit_price=limit)
        stopped = self._stop_reason(watch, result.action)
        if stopped is not None:  # halted (or stopped) between the checks and the send
            result.reason = f"Not sent: {stopped}"
            log.warning("Order %s not sent: %s", result.order_ref, stopped)
            return result
        try:
            state = await self._paced(lambda: self.broker.place_order(order))
        except BrokerDisconnected as exc:
            result.outcome = "UNKNOWN"
            result.reason = (f"Connection lost after sending ({exc}); reconciliation will "
                             "find the order by its orderRef — it is never sent twice")
            log.error("Order %s: %s", result.order_ref, result.reason)
            return result
        except BrokerError as exc:
            result.reason = f"Broker refused the order: {exc}"
            return result
        watch.state = watch.state or state
        result.order_id, result.perm_id = state.order_id, state.perm_id
        log.info("Order %s sent: %s %d %s at $%.2f (bid %.2f / ask %.2f)", result.order_ref,
                 result.action, contracts, contract.key, limit, result.bid or 0,
                 result.ask or 0)
        return await self._work(contract, contracts, watch, result, on_progress)

    async def _work(self, contract: OptionContract, contracts: int, watch: _Watch,
                    result: OrderResult,
                    on_progress: Callable[[OrderResult], None] | None,
                    elapsed: float = 0.0, step: int = 0) -> OrderResult:
        """Wait for fills, reprice toward the touch step by step, cancel at the timeout,
        or at once when stopped (an opening order when trading halts)."""
        s = self.settings
        result.outcome = "WORKING"
        result.reason = f"Working at ${result.last_limit or 0:.2f}"
        if on_progress:
            on_progress(result)
        start = time.monotonic() - elapsed
        first_limit = result.last_limit or 0.0
        stopped: str | None = None
        while True:
            current = watch.state
            if current is not None and current.status.is_done:
                break
            stopped = self._stop_reason(watch, result.action)
            if stopped is not None:
                log.warning("Order %s: cancelling — %s", result.order_ref, stopped)
                await self._cancel(watch, result, stopped)
                break
            elapsed = time.monotonic() - start
            if elapsed >= s.order_timeout_seconds:
                await self._cancel(watch, result)
                break
            next_step_at = (step + 1) * s.reprice_interval_seconds
            await watch.wait(min(next_step_at, s.order_timeout_seconds) - elapsed)
            self._progress(result, watch, on_progress)
            if watch.state is not None and watch.state.status.is_done:
                break
            if (time.monotonic() - start >= next_step_at and step < s.reprice_steps
                    and result.order_id is not None and first_limit > 0
                    and self._stop_reason(watch, result.action) is None):
                step += 1
                await self._reprice(contract, first_limit, step, watch, result, on_progress)
        finished = self._finish(result, watch, contracts)
        if stopped is not None and finished.outcome in ("CANCELLED", "PARTIAL"):
            finished.reason = f"{finished.reason}: {stopped}"
        return finished

    async def _reprice(self, contract: OptionContract, first_limit: float, step: int,
                       watch: _Watch, result: OrderResult,
                       on_progress: Callable[[OrderResult], None] | None) -> None:
        steps = self.settings.reprice_steps
        try:
            quote = await self._paced(lambda: self.broker.option_quote(contract))
        except BrokerError as exc:
            log.warning("Order %s: no quote to reprice (%s)", result.order_ref, exc)
            return
        if result.action == "BUY":
            if quote.ask is None or quote.ask <= 0:
                log.warning("Order %s: ask gone, not repricing", result.order_ref)
                return
            touch = quote.ask
            target = first_limit + (quote.ask - first_limit) * step / steps
            limit = min(quote.ask, round_to_tick(target))
            if result.last_limit is not None and limit <= result.last_limit:
                return
        else:
            if quote.bid is None or quote.bid <= 0:
                log.warning("Order %s: bid gone, not repricing", result.order_ref)
                return
            touch = quote.bid
            target = first_limit - (first_limit - quote.bid) * step / steps
            limit = max(quote.bid, round_to_tick(target, down=False))
            if result.last_limit is not None and limit >= result.last_limit:
                return
        assert result.order_id is not None
        order_id = result.order_id
        if self._stop_reason(watch, result.action) is not None:
            return  # halted while the quote came in: the loop cancels it next
        try:
            await self._paced(lambda: self.broker.modify_order(order_id, limit))
        except BrokerError as exc:
            log.warning("Order %s: reprice failed (%s)", result.order_ref, exc)
            return
        result.last_limit, result.reprices = limit, result.reprices + 1
        result.reason = f"Working at ${limit:.2f} (reprice {step} of {steps})"
        log.info("Order %s repriced to $%.2f (step %d of %d toward the touch %.2f)",
                 result.order_ref, limit, step, steps, touch)
        if on_progress:
            on_progress(result)

    async def _cancel(self, watch: _Watch, result: OrderResult, why: str | None = None
                      ) -> None:
        if result.order_id is None:
            return
        order_id = result.order_id
        if why is None:
            log.info("Order %s unfilled after %.0f s: cancelling", result.order_ref,
                     self.settings.order_timeout_seconds)
        try:
            await self._paced(lambda: self.broker.cancel_order(order_id))
        except BrokerError as exc:
            log.error("Order %s: cancel failed (%s)", result.order_ref, exc)
            return
        for _ in range(20):
            if watch.state is not None and watch.state.status.is_done:
                return
            await watch.wait(0.25)

    @staticmethod
    def _progress(result: OrderResult, watch: _Watch,
                  on_progress: Callable[[OrderResult], None] | None) -> None:
        state = watch.state
        if state is None or state.filled == result.filled:
            return
        result.filled, result.avg_fill_price = state.filled, state.avg_fill_price
        result.reason = f"Filled {state.filled} of {result.contracts}"
        if on_progress:
            on_progress(result)

    def _finish(self, result: OrderResult, watch: _Watch, contracts: int) -> OrderResult:
        state = watch.state
        filled = state.filled if state is not None else sum(f.quantity for f in watch.fills)
        if watch.fills:
            filled = max(filled, sum(f.quantity for f in watch.fills))
            value = sum(f.price * f.quantity for f in watch.fills)
            qty = sum(f.quantity for f in watch.fills)
            result.avg_fill_price = value / qty if qty else None
            result.commission = sum(f.commission or 0.0 for f in watch.fills)
        elif state is not None:
            result.avg_fill_price = state.avg_fill_price
        result.filled = filled
        status = state.status if state is not None else (
            OrderStatus.FILLED if filled >= contracts else OrderStatus.CANCELLED)
        if filled >= contracts:
            result.outcome = "FILLED"
            result.reason = f"Filled {filled} at ${result.avg_fill_price or 0:.2f}"
        elif not status.is_done and not self.broker.connected:
            # The link dropped while the order worked: it could not be cancelled and may
            # still be working. Nobody follows it now; reconciliation settles it.
            result.outcome = "UNKNOWN"
            result.reason = (f"Connection lost while the order was working (filled {filled} "
                             f"of {contracts}): the rest could not be cancelled; "
                             "reconciliation cancels it on reconnect")
        elif status is OrderStatus.INACTIVE:
            result.outcome = "REJECTED" if filled == 0 else "PARTIAL"
            result.reason = f"Broker rejected the order: {state.message if state else ''}"
        elif filled > 0:
            result.outcome = "PARTIAL"
            result.reason = f"Filled {filled} of {contracts}; the rest cancelled"
        elif status is OrderStatus.CANCELLED:
            result.outcome, result.reason = "CANCELLED", "Cancelled unfilled"
        else:
            result.outcome = "WORKING"
        log.log(logging.INFO if result.success else logging.WARNING, "Order %s: %s — %s",
                result.order_ref, result.outcome, result.reason)
        return result
