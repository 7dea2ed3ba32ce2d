"""AssignmentDetector (spec 5.4): stock that appeared because a short put was assigned.

IBKR has no assignment event: an assignment shows as the put leaving the account (all of
it or some contracts) while the symbol's long shares grow by 100 a contract. Both must be
seen. Shares already held with the put still open are not one (the operator may hold
stock on a symbol PutDesk sells puts on), nor are shares that grow while the put stays.
The shares are compared with those seen at the previous check (kept in system_state per
account, SHARES_SEEN_KEY), so the put and the shares may show up on different checks, in
either order (IBKR sends them as separate position updates). The put counts as gone
when an open trade's contract is held with fewer contracts than the trade, or when the
trade was settled ASSIGNED or EXPIRED at expiration within LOOKBACK_DAYS.

Detected: CRITICAL "POSSIBLE ASSIGNMENT DETECTED: {symbol} — {shares} shares found in
account" for the assigned shares only (the operator's own are named as held), recorded
on the trade (assignment_detected, assignment_date), once per trade: the flag is set in
one statement, so of two processes that see the same assignment only one alerts. Without an earlier
count (the first check for the account) a put gone with round lots held is flagged, as
the spec asks, rather than miss an assignment.

Response (ASSIGNMENT_RESPONSE_MODE): ALERT (default) — the alert only; HOLD — recorded
and kept; COVERED_CALL — a covered-call suggestion for the operator (nothing is sent);
SELL_IMMEDIATELY — a market order sells the assigned shares (it rests until the regular
session if sent outside it). While trading is halted it is held back (HELD_BACK_KEY)
and sent at the first check after trading resumes, for the assigned shares still held
beyond those the account had before.

Expiration: an open put trade the broker no longer holds after its expiration is settled
on the same check: ASSIGNED if the underlying is below the strike, else EXPIRED
(worthless, the whole premium realised).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from core.broker.base import (
    BrokerError,
    OptionContract,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
)
from core.clock import new_york
from core.db.tables import Trade
from core.market.calendar import CalendarOutOfRange

if TYPE_CHECKING:
    from core.engine import Engine

log = logging.getLogger("putdesk.monitoring.assignments")

LOOKBACK_DAYS = 7
#: A put settled as expired worthless (out of the money at the close) can still be
#: assigned (a move after the close); its shares are in the account by the next
#: session's open. Past this much after that open, shares that grow are not its.
DELIVERY_GRACE = timedelta(hours=1)

#: system_state key: the long shares per symbol at the last check, for one account.
SHARES_SEEN_KEY = "assignments.shares_seen"

#: system_state key: assigned shares whose SELL_IMMEDIATELY sale a halt held back, per
#: account; they are sold at the first check after trading resumes.
HELD_BACK_KEY = "assignments.sales_held_back"

#: Shares that grew while the symbol's puts are all still held may be an assignment whose
#: option update has not arrived yet; they count as the operator's once they have stayed
#: this long with the puts still held.
UNEXPLAINED_GROWTH_GRACE = timedelta(minutes=10)


@dataclass(frozen=True)
class AssignmentEvent:
    symbol: str
    shares: int  # the assigned shares (what a SELL_IMMEDIATELY response sells)
    trade_ids: tuple[str, ...]
    message: str
    held: int = 0  # all the shares of the symbol in the account

    def as_dict(self) -> dict[str, object]:
        return {"symbol": self.symbol, "shares": self.shares, "trade_ids": list(self.trade_ids),
                "message": self.message, "held": self.held}


@dataclass
class AssignmentReport:
    detected: list[AssignmentEvent] = field(default_factory=list)
    already_known: list[str] = field(default_factory=list)
    stock_without_trades: list[str] = field(default_factory=list)
    #: Stock on a symbol with put trades, not grown as a put left: not an assignment.
    stock_not_assigned: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)  # trades settled at expiration
    error: str = ""


@dataclass(frozen=True)
class _Seen:
    shares: int
    grew_at: datetime | None = None  # unexplained growth first seen (puts still held)


def _contract(t: Trade) -> OptionContract:
    return OptionContract(t.symbol, t.expiration, t.strike, "C" if t.right == "C" else "P")


def _puts_gone(puts: list[Trade], held: dict[OptionContract, int], since: datetime,
               today: date, delivered: Callable[[date], bool] = lambda _d: False
               ) -> tuple[list[tuple[Trade, int]], int]:
    """Unflagged put trades whose option left the account, each with how many of its
    contracts left (a trade partly assigned: some), and how many left in all."""
    gone: list[tuple[Trade, int]] = []
    open_by_contract: dict[OptionContract, list[Trade]] = defaultdict(list)
    for t in puts:
        if t.assignment_detected:
            continue
        if t.status == "OPEN":
            open_by_contract[_contract(t)].append(t)
        elif t.status == "EXPIRED" and delivered(t.expiration):
            continue  # its shares would be here by now: later ones are the operator's
        elif t.status in ("ASSIGNED", "EXPIRED") and (
                (t.exit_time is not None and t.exit_time >= since)
                or today - t.expiration <= timedelta(days=LOOKBACK_DAYS)):
            gone.append((t, t.contracts))
    for contract, trades in open_by_contract.items():
        short = sum(t.contracts for t in trades) - held.get(contract, 0)
        for t in trades:
            if short <= 0:
                break
            gone.append((t, min(t.contracts, short)))
            short -= t.contracts
    # Higher strikes first: the deeper in the money, the likelier the one assigned.
    gone.sort(key=lambda g: -g[0].strike)
    return gone, sum(n for _t, n in gone)


class AssignmentDetector:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.mode = engine.settings.rolls.assignment_response
        # One check at a time: a position change (expiry) starts one while the monitor's
        # may be running, and both would flag, alert and settle the same trades.
        self._lock = asyncio.Lock()

    def _delivered(self, expiration: date) -> bool:
        """Past the next session's open after `expiration` (plus DELIVERY_GRACE): shares
        from its assignment would be in the account. False when the calendar cannot say
        (the 7-day window then stands)."""
        calendar, now = self.engine.calendar, self.engine.clock.now()
        day = expiration
        try:
            for _ in range(10):
                day += timedelta(days=1)
                hours = calendar.open_close(day)
                if hours is not None:
                    return now >= hours[0] + DELIVERY_GRACE
        except CalendarOutOfRange:
            return False
        return False

    async def check_for_assignments(self) -> AssignmentReport:
        async with self._lock:
            return await self._check()

    async def _check(self) -> AssignmentReport:
        engine = self.engine
        report = AssignmentReport()
        try:
            positions = await engine.broker.positions()
        except BrokerError as exc:
            report.error = str(exc)
            return report
        trades = await asyncio.to_thread(engine.trades.all)
        selling = {r.symbol for r in await asyncio.to_thread(
            engine.staged.list, ("SENDING", "WORKING", "UNKNOWN"), ("stock",))}
        account = engine.broker.info().account_id
        seen = await asyncio.to_thread(self._load_seen, account)
        now = engine.clock.now()
        since = now - timedelta(days=LOOKBACK_DAYS)
        today = new_york(now).date()
        stocks: dict[str, int] = {}
        held: dict[OptionContract, int] = defaultdict(int)
        for p in positions:
            if p.sec_type == "STK" and p.quantity > 0:
                stocks[p.symbol] = stocks.get(p.symbol, 0) + int(p.quantity)
            elif p.sec_type == "OPT" and p.contract is not None and p.quantity < 0:
                held[p.contract] += int(-p.quantity)
        now_seen: dict[str, _Seen] = {}
        for symbol, shares in sorted(stocks.items()):
            puts = [t for t in trades if t.symbol == symbol and t.right == "P"]
            recent = [t for t in puts if t.status == "OPEN" or (
                t.exit_time is not None and t.exit_time >= since) or (
                t.status in ("EXPIRED", "ASSIGNED")
                and today - t.expiration <= timedelta(days=LOOKBACK_DAYS))]
            before = None if seen is None else seen.get(symbol, _Seen(0))
            grown = None if before is None else shares - before.shares
            gone, left = _puts_gone(puts, held, since, today, self._delivered)
            assigned = 0
            if left and shares >= 100:
                # No earlier count: a put gone with round lots held is flagged, as the
                # spec asks, rather than miss an assignment.
                assigned = max(0, min(left, (shares if grown is None else grown) // 100))
            now_seen[symbol] = self._next_seen(before, shares, assigned, puts, held, now)
            if not assigned:
                if any(t.assignment_detected for t in recent):
                    report.already_known.append(symbol)
                elif not recent:
                    report.stock_without_trades.append(f"{symbol} {shares} shares")
                else:
                    report.stock_not_assigned.append(f"{symbol} {shares} shares")
                continue
            flagged: list[tuple[Trade, int]] = []
            covered = 0
            for t, n in gone:
                if covered >= assigned:
                    break
                flagged.append((t, min(n, assigned - covered)))
                covered += n
            claimed = await asyncio.to_thread(self._record, flagged, positions)
            if not claimed:
                report.already_known.append(symbol)  # another process flagged it first
                continue
            message = (f"POSSIBLE ASSIGNMENT DETECTED: {symbol} — {assigned * 100} shares "
                       "found in account")
            if shares != assigned * 100:
                message += (f" ({shares} held"
                            + (f", {before.shares} before)" if before is not None else ")"))
            log.critical(message)
            event = AssignmentEvent(symbol, assigned * 100, tuple(t.id for t in claimed),
                                    message, shares)
            engine.alert("CRITICAL", message, "assignment", symbol=symbol,
                         data=event.as_dict())
            # Without an earlier count the shares cannot be told from the account's own:
            # flagged for review, never sold on that guess.
            await self.handle_assignment(event, certain=before is not None,
                                         another_sale=symbol in selling)
            report.detected.append(event)
        for text in report.stock_without_trades:
            log.info("Stock without a put trade (not flagged): %s", text)
        for text in report.stock_not_assigned:
            log.info("Stock not from an assignment (its puts are held, or the shares did not "
                     "grow as one left): %s", text)
        await asyncio.to_thread(self._store_seen, account, now_seen)
        if not engine.read_only and self.mode == "SELL_IMMEDIATELY":
            await self._send_held_back(account, stocks)
        report.expired = await self._settle_expiries(positions)
        if not engine.read_only:
            await self._settle_sales()
        return report

    @staticmethod
    def _next_seen(before: _Seen | None, shares: int, assigned: int, puts: list[Trade],
                   held: dict[OptionContract, int], now: datetime) -> _Seen:
        """The count the next check compares with. Growth with every put still held is
        the operator's once it outlasts UNEXPLAINED_GROWTH_GRACE; until then the put's
        own position update may still be on its way."""
        if before is None or assigned or shares <= before.shares:
            return _Seen(shares)
        grown = shares - before.shares
        contracts_held = sum(held.get(_contract(t), 0) for t in puts if t.status == "OPEN")
        if grown % 100 or grown // 100 > contracts_held:
            return _Seen(shares)  # no held put could deliver these
        grew_at = before.grew_at or now
        if now - grew_at >= UNEXPLAINED_GROWTH_GRACE:
            return _Seen(shares)
        return _Seen(before.shares, grew_at)

    def _load_seen(self, account: str) -> dict[str, _Seen] | None:
        """The shares per symbol at the last check of this account; None without one."""
        try:
            stored = self.engine.state_repo.get(SHARES_SEEN_KEY)
            if stored is None:
                return None
            data = json.loads(stored[0])
            if data.get("account") != account:
                return None
            return {str(sym): _Seen(int(shares), datetime.fromisoformat(grew_at)
                                    if grew_at else None)
                    for sym, (shares, grew_at) in data["symbols"].items()}
        except Exception:
            log.exception("Shares seen at the last assignment check not read: a put gone "
                          "with round lots held counts as an assignment this time")
            return None

    def _store_seen(self, account: str, seen: dict[str, _Seen]) -> None:
        try:
            self.engine.state_repo.set(SHARES_SEEN_KEY, json.dumps({
                "account": account,
                "symbols": {sym: [s.shares, s.grew_at.isoformat() if s.grew_at else None]
                            for sym, s in seen.items()}}), self.engine.wall_clock.now())
        except Exception:
            log.exception("Shares seen not saved: the next assignment check compares with "
                          "an older count")

    async def _settle_sales(self) -> None:
        """Market sales of assigned shares rest until the regular session: their ledger
        rows settle when today's executions show them done (nobody else follows them)."""
        engine = self.engine
        rows = await asyncio.to_thread(engine.staged.list, ("WORKING",), ("stock",))
        mine = [r for r in rows if r.sender == engine.ledger.sender]
        if not mine:
            return
        try:
            open_refs = {o.order_ref for o in await engine.broker.open_orders()}
            fills = await engine.broker.fills()
        except BrokerError as exc:
            log.warning("Assigned-stock sales not settled: %s", exc)
            return
        from core.models import OrderResult

        for row in mine:
            if row.order_ref in open_refs:
                continue
            got = [f for f in fills if f.order_ref == row.order_ref]
            sold = sum(f.quantity for f in got)
            if not sold:
                continue  # sold on another day, or not at all: reconcile's view decides
            result = OrderResult("FILLED" if sold >= row.contracts else "PARTIAL",
                                 f"Sold {sold} shares", row.order_ref, row.contracts,
                                 filled=sold,
                                 avg_fill_price=sum(f.price * f.quantity for f in got) / sold,
                                 commission=sum(f.commission or 0.0 for f in got))
            await engine.executor.settle_row(row.id, result)

    async def _settle_expiries(self, positions: list[Position]) -> list[str]:
        """Open put trades the broker no longer holds once their expiration has passed:
        ASSIGNED when the underlying is below the strike at this check (IBKR assigns
        in-the-money options at expiration; the detector flags the shares when they show),
        else EXPIRED worthless with the whole premium realised. Nothing else closes such
        a trade: without this it stays OPEN in the database while the broker has nothing.
        Without an underlying price the trade waits for a later check."""
        engine = self.engine
        now = engine.clock.now()
        held = {p.contract for p in positions if p.contract is not None}
        out = []
        for t in await asyncio.to_thread(engine.trades.open_trades):
            contract = OptionContract(t.symbol, t.expiration, t.strike,
                                      "C" if t.right == "C" else "P")
            expired_at = engine.calendar.expiration_close(t.expiration)
            if contract in held or now < expired_at:
                continue
            try:
                price = await engine.broker.underlying_price(t.symbol)
            except BrokerError:
                price = None
            if price is None:
                continue
            t.exit_time, t.updated_at = expired_at, now
            if price < t.strike:
                t.status, t.exit_reason, t.exit_price = "ASSIGNED", "assigned", None
            else:
                t.status, t.exit_reason, t.exit_price = "EXPIRED", "expired worthless", 0.0
                t.realized_pnl = t.entry_price * 100 * t.contracts - (t.commission or 0.0)
            await asyncio.to_thread(engine.trades.update, t)
            text = (f"{contract.key} {t.exit_reason} (underlying {price:.2f}, strike "
                    f"{t.strike:g})")
            log.info("Expiration: %s", text)
            await asyncio.to_thread(engine.audit_event, "expiry", text, "INFO",
                                    "assignment detector", t.symbol)
            out.append(text)
        return out

    def _record(self, parts: list[tuple[Trade, int]], positions: list[Position]
                ) -> list[Trade]:
        """Flags the trades (`parts`: each with the contracts assigned); returns those
        this process flagged (another process that saw the same assignment may have
        flagged some first: it alerts for them). Part of a trade assigned becomes a trade
        of its own; the rest stays open and unflagged, so its own assignment is seen."""
        engine = self.engine
        now = engine.clock.now()
        claimed = []
        for t, n in parts:
            # By quantity: another trade may hold the same contract.
            if t.status == "OPEN" and n < t.contracts:
                part = engine.trades.split_assignment(t, n, now)
                if part is not None:
                    log.warning("Trade %s partly assigned: %d of %d contracts (trade %s); "
                                "%d still open", t.id, n, n + t.contracts, part.id,
                                t.contracts)
                    claimed.append(part)
                continue
            if not engine.trades.claim_assignment(t.id, now):
                continue
            claimed.append(t)
            t.assignment_detected, t.assignment_date = True, now
            if t.status in ("OPEN", "EXPIRED"):
                # EXPIRED: the option left the account before the shares showed up.
                t.status, t.exit_time, t.exit_reason = "ASSIGNED", now, "assigned"
                t.exit_price = t.realized_pnl = None
            t.updated_at = now
            engine.trades.update(t)
        return claimed

    async def _send_held_back(self, account: str, stocks: dict[str, int]) -> None:
        """Sales of assigned shares that a halt held back go out once trading resumes:
        the shares still held beyond those the account had before the assignment."""
        engine = self.engine
        held_back = await asyncio.to_thread(self._load_held_back, account)
        if not held_back:
            return
        await asyncio.to_thread(engine.kill_switch.sync)
        if engine.kill_switch.is_halted()[0]:
            return
        await asyncio.to_thread(self._store_held_back, account, {})
        for symbol, event in sorted(held_back.items()):
            own = max(0, event.held - event.shares)
            shares = min(event.shares, stocks.get(symbol, 0) - own)
            if shares <= 0:
                text = (f"{symbol}: the sale of {event.shares} assigned shares held back by "
                        f"the halt is not sent — the account holds {stocks.get(symbol, 0)} "
                        "shares now, none of them from the assignment")
            else:
                text = await self._sell(replace(event, shares=shares, held=own + shares))
            # Logged, audited (once) and notified.
            engine.alert("CRITICAL", text, "assignment_response", symbol=symbol,
                         data=event.as_dict())

    def _load_held_back(self, account: str) -> dict[str, AssignmentEvent]:
        try:
            stored = self.engine.state_repo.get(HELD_BACK_KEY)
            data = json.loads(stored[0]) if stored is not None else {}
            if data.get("account") != account:
                return {}
            return {sym: AssignmentEvent(sym, int(e["shares"]), tuple(e["trade_ids"]),
                                         str(e["message"]), int(e["held"]))
                    for sym, e in data["sales"].items()}
        except Exception:
            log.exception("Assigned-stock sales held back by a halt not read: sell the "
                          "assigned shares after review")
            return {}

    def _store_held_back(self, account: str, sales: dict[str, AssignmentEvent]) -> None:
        self.engine.state_repo.set(HELD_BACK_KEY, json.dumps({
            "account": account, "sales": {sym: e.as_dict() for sym, e in sales.items()}}),
            self.engine.wall_clock.now())

    def _hold_back(self, event: AssignmentEvent) -> None:
        account = self.engine.broker.info().account_id
        sales = self._load_held_back(account)
        sales[event.symbol] = event
        self._store_held_back(account, sales)

    async def _sell(self, event: AssignmentEvent) -> str:
        engine = self.engine
        # The persisted flag, not only this process's copy of it: another process may
        # have halted since the last sync.
        await asyncio.to_thread(engine.kill_switch.sync)
        if engine.kill_switch.is_halted()[0]:
            try:
                await asyncio.to_thread(self._hold_back, event)
            except Exception:
                log.exception("Assigned-stock sale of %s not held back", event.symbol)
                return (f"{event.symbol}: SELL_IMMEDIATELY not sent — trading is halted; "
                        f"sell {event.shares} shares after review")
            return (f"{event.symbol}: SELL_IMMEDIATELY not sent — trading is halted; the "
                    f"{event.shares} assigned shares are sold when trading resumes")
        from core.execution.ledger import NewOrder
        from core.models import OrderResult

        row = await asyncio.to_thread(engine.ledger.open, NewOrder(
            kind="stock", symbol=event.symbol, contracts=event.shares, action="SELL",
            limit_price=0.0, active_key=f"stock:{event.symbol}", right="S",
            detail={"assignment": event.as_dict()},
            message=f"Market sell of {event.shares} assigned shares"), "putdesk-assign-")
        if row is None:
            return f"{event.symbol}: SELL_IMMEDIATELY — a sale of these shares already works"
        ref = row.order_ref
        order = OrderRequest("SELL", event.shares, ref, stock=event.symbol,
                             order_type=OrderType.MARKET)
        result = OrderResult("REJECTED", "", ref, event.shares, action="SELL")
        # The shares as the broker holds them now, not at detection: a sale that filled
        # meanwhile would make this one a short sale of stock.
        try:
            held = sum(p.quantity for p in await engine.broker.positions()
                       if p.sec_type == "STK" and p.symbol == event.symbol)
        except BrokerError as exc:
            result.reason = f"Shares not confirmed before the sale: {exc}"
            await engine.executor.settle_row(row.id, result)
            return (f"{event.symbol}: SELL_IMMEDIATELY not sent — the broker's position could "
                    f"not be read ({exc}); sell the shares in TWS after review")
        own = max(0, event.held - event.shares)  # held before the assignment
        if held - own < event.shares:
            why = (f"the account holds {held:g} {event.symbol} shares now, not {event.shares}"
                   + (f" beyond its own {own}" if own else ""))
            result.reason = f"Not sent: {why}"
            log.warning("Assigned-stock sale %s not sent: %s", ref, why)
            await engine.executor.settle_row(row.id, result)
            return f"{event.symbol}: SELL_IMMEDIATELY not sent — {why}"
        try:
            state = await engine.broker.place_order(order)
        except BrokerError as exc:
            result.reason = f"Broker refused the order: {exc}"
            await engine.executor.settle_row(row.id, result)
            return f"{event.symbol}: SELL_IMMEDIATELY failed: {exc} — sell the shares in TWS"
        result.order_id, result.perm_id = state.order_id, state.perm_id
        result.filled, result.avg_fill_price = state.filled, state.avg_fill_price
        if state.status is OrderStatus.FILLED:
            result.outcome, result.reason = "FILLED", f"Sold {state.filled} shares"
            await engine.executor.settle_row(row.id, result)
        else:
            result.outcome = "WORKING"
            result.reason = f"Market sell {state.status.value}: fills in the regular session"
            await asyncio.to_thread(engine.ledger.update, row.id, "WORKING", result.reason,
                                    result)
            engine.orders_changed()
        if state.status is OrderStatus.FILLED:
            return (f"{event.symbol}: SELL_IMMEDIATELY — sold {state.filled} shares at "
                    f"${state.avg_fill_price or 0:.2f} ({ref})")
        return (f"{event.symbol}: SELL_IMMEDIATELY — market sell of {event.shares} shares "
                f"{state.status.value} ({ref}); it fills in the regular session")

    async def handle_assignment(self, event: AssignmentEvent, certain: bool = True,
                                another_sale: bool = False) -> str:
        """The response mode's answer. `certain`: the shares were measured against an
        earlier count (else no sale: they may be the account's own); `another_sale`: a
        sale of the symbol's earlier assigned shares still works (one at a time)."""
        engine = self.engine
        mode = self.mode
        if mode == "SELL_IMMEDIATELY" and (not certain or another_sale):
            why = ("no share count from an earlier check tells them from the account's own"
                   if not certain else "a sale of earlier assigned shares still works")
            text = (f"{event.symbol}: SELL_IMMEDIATELY not sent — {why}; review the "
                    f"{event.shares} shares and sell them in TWS")
            engine.alert("CRITICAL", text, "assignment_response", symbol=event.symbol,
                         data=event.as_dict())
            return text
        if mode == "HOLD":
            text = f"{event.symbol}: assignment recorded; holding {event.shares} shares (HOLD)"
        elif mode == "COVERED_CALL":
            price = await engine.broker.underlying_price(event.symbol)
            strike = f" around {price * 1.05:.0f}" if price else ""
            text = (f"{event.symbol}: covered-call suggestion — sell {event.shares // 100} "
                    f"call(s){strike}, 30-45 DTE, against the {event.shares} shares. "
                    "Nothing was sent.")
        elif mode == "SELL_IMMEDIATELY":
            text = await self._sell(event)
            # Logged, audited (once) and notified: a sale of shares is news.
            engine.alert("CRITICAL", text, "assignment_response", symbol=event.symbol,
                         data=event.as_dict())
            return text
        else:
            text = f"{event.symbol}: assignment alert sent (ALERT)"
        log.warning(text)
        await asyncio.to_thread(engine.audit_event, "assignment_response", text, "WARNING",
                                "assignment detector", event.symbol, event.as_dict())
        return text
