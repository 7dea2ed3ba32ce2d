"""OrderExecutor: one staged order through every gate to the broker.

execute_trade(): market session (spec 3.4B: REGULAR or PRE_MARKET; dry runs bypass) ->
_validate_trade() (premium > 0, premium <= 20% of strike: spec 3.4A) -> the risk governor
again with live data -> the adaptive executor -> on a fill, the trade and its entry
snapshot are written and the post-trade margin is verified (spec 2.1B). Dry-run goes
through every step except sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from core import fmt
from core.broker.base import BrokerError
from core.db.session import error_text
from core.db.tables import StagedOrder, Trade, TradeEntrySnapshot
from core.market.calendar import MarketSession
from core.market.sectors import get_sector
from core.models import Opportunity, OrderResult, RiskDecision

if TYPE_CHECKING:
    from core.engine import Engine

log = logging.getLogger("putdesk.execution.orders")

#: Staged-order statuses. STAGED waits; SENDING is between the checks and the broker's
#: acknowledgement; UNKNOWN was sent when the link dropped (reconciliation decides).
OPEN_STATUSES = ("STAGED", "SENDING", "UNKNOWN", "WORKING")
FINAL_STATUSES = ("FILLED", "PARTIAL", "CANCELLED", "REJECTED")


def opportunity_of(staged: StagedOrder) -> Opportunity:
    """The opportunity a staged order stands for, as it was approved, priced at its
    staged limit and capped at its staged size."""
    approved = json.loads(staged.decision).get("opportunity", {})
    assert staged.expiration is not None and staged.strike is not None, "an opening order"
    return Opportunity(staged.symbol, staged.expiration, staged.strike, staged.limit_price,
                       requested_contracts=staged.contracts,
                       delta=approved.get("delta"), source=approved.get("source", "staged"),
                       iv_rank=approved.get("iv_rank"))


#: Why a read-only process (PUTDESK_READ_ONLY, --read-only) sends nothing; front ends say it too.
READ_ONLY_REASON = "Read-only console: orders are disabled"


class OrderExecutor:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings.execution
        self._writes: dict[str, list[asyncio.Future[None]]] = {}

    # --- gates ---------------------------------------------------------------------------

    def market_gate(self, dry_run: bool) -> str | None:
        """None when orders may go out now; else the reason they may not."""
        if self.engine.read_only:
            return READ_ONLY_REASON
        info = self.engine.calendar.session_at(self.engine.clock.now())
        if info.session in (MarketSession.REGULAR, MarketSession.PRE_MARKET):
            return None
        if dry_run:
            log.info("Market %s (%s): dry run continues", info.session.value, info.reason)
            return None
        return f"Market closed ({info.session.value}: {info.reason})"

    def _validate_trade(self, opp: Opportunity, today: date) -> str | None:
        """Spec 3.4A and the basics: a reason to refuse, or None."""
        if opp.premium is None or opp.premium <= 0:
            return f"Premium {opp.premium} must be greater than 0"
        cap = opp.strike * self.settings.max_premium_pct_of_strike
        if opp.premium > cap:
            reason = (f"Premium ${opp.premium:.2f} suspiciously high (>"
                      f"{self.settings.max_premium_pct_of_strike:.0%} of strike ${opp.strike:g}"
                      f" = ${cap:.2f})")
            log.warning("Trade rejected: %s", reason)
            return reason
        if (opp.requested_contracts or 0) < 1:
            return "Contracts must be at least 1"
        if opp.expiration < today:
            return f"Expiration {opp.expiration} has passed"
        return None

    # --- the pipeline --------------------------------------------------------------------

    async def execute_trade(self, staged: StagedOrder, *, dry_run: bool | None = None,
                            verify: bool = True,
                            on_progress: Callable[[OrderResult], None] | None = None
                            ) -> OrderResult:
        engine = self.engine
        dry = self.settings.dry_run if dry_run is None else dry_run
        result = OrderResult("REJECTED", "", staged.order_ref, staged.contracts,
                             staged_limit=staged.limit_price)
        if staged.status != "STAGED":
            result.reason = f"Not sent: the order is {staged.status}, not STAGED"
            return result
        opp = opportunity_of(staged)

        def progress(r: OrderResult) -> None:
            self._progress(staged.id, r)
            if on_progress is not None:
                on_progress(r)

        if not dry:
            # Already at the broker under this orderRef (a retry after a lost
            # acknowledgement)? Then follow that order; never place a second one.
            try:
                state, fills = await engine.adaptive.existing(staged.order_ref)
            except BrokerError as exc:
                result.reason = f"Cannot confirm the order is not already at the broker: {exc}"
                log.warning("Order %s not sent, stays STAGED: %s", staged.order_ref,
                            result.reason)
                return result
            if state is not None or fills:
                result = await engine.adaptive.adopt(opp.contract, staged.contracts,
                                                     staged.limit_price, staged.order_ref,
                                                     state, fills, progress)
                await self._finish(staged, result, dry)
                if result.filled > 0 and verify:
                    await engine.verify_post_trade_margin()
                return result
        closed = self.market_gate(dry)
        if closed is not None:
            result.reason = closed  # stays STAGED for the next open
            log.warning("Order %s not sent: %s", staged.order_ref, closed)
            return result
        today = engine.calendar.session_at(engine.clock.now()).at.date()
        invalid = self._validate_trade(opp, today)
        if invalid is not None:
            result.reason = invalid
            await self._refuse(staged, result, dry)
            return result
        try:
            decision = await engine.check(opp, revalidating=staged.id, actor="executor")
        except SQLAlchemyError as exc:
            return self._database_down(staged, result, exc)
        if not decision.approved:
            result.reason = f"No longer passes the risk checks: {decision.summary}"
            log.warning("Order %s not sent: %s", staged.order_ref, result.reason)
            if decision.rejected_by is not None and decision.rejected_by.name == "kill_switch":
                return result  # halted: it stays STAGED for after the resume
            await self._refuse(staged, result, dry)
            return result
        contracts = decision.opportunity.contracts
        result.contracts = contracts
        if not dry:
            halted, why = engine.kill_switch.is_halted()
            if halted:  # since the check (a database fault while it was written, a halt)
                result.reason = f"Not sent: trading halted: {why}"
                log.warning("Order %s not sent, stays STAGED: %s", staged.order_ref, why)
                return result
            try:
                claimed = await asyncio.to_thread(engine.ledger.claim_staged, staged.id,
                                                  f"Sending {fmt.contracts(contracts)}")
            except SQLAlchemyError as exc:
                return self._database_down(staged, result, exc)
            if not claimed:
                result.reason = "Not sent here: another sender already took this order"
                log.warning("Order %s: %s", staged.order_ref, result.reason)
                return result
            engine.orders_changed()
        result = await engine.adaptive.place_order(
            opp.contract, contracts, staged.limit_price, staged.order_ref, dry_run=dry,
            on_progress=None if dry else progress)
        for warning in decision.warnings:
            result.warnings.append(f"{warning.name}: {warning.reason}")
        await self._finish(staged, result, dry, decision)
        if result.filled > 0 and verify:
            await engine.verify_post_trade_margin()
        return result

    def _database_down(self, staged: StagedOrder, result: OrderResult,
                       exc: SQLAlchemyError) -> OrderResult:
        """Before the claim the database failed: nothing was sent, the order stays STAGED
        (the database could not say otherwise) and new orders halt until it answers."""
        result.reason = f"Not sent: database unavailable ({error_text(exc)})"
        log.error("Order %s not sent, stays STAGED: %s", staged.order_ref, result.reason)
        self.engine.database_fault(exc, f"sending {staged.order_ref}")
        return result

    # --- persistence --------------------------------------------------------------------

    def _progress(self, staged_id: str, result: OrderResult) -> None:
        """Progress arrives synchronously from the executor; written in order, and all
        written before the final status (so a late progress never overwrites it)."""
        snapshot = OrderResult(**{**result.__dict__, "warnings": list(result.warnings)})
        previous = self._writes.setdefault(staged_id, [])

        async def write() -> None:
            for earlier in list(previous[:-1]):
                await earlier
            await self._set(staged_id, "WORKING", snapshot.reason, snapshot)

        previous.append(asyncio.ensure_future(write()))

    def progress_writer(self, row_id: str) -> Callable[[OrderResult], None]:
        """on_progress for any ledger row (closes, roll legs): ordered writes."""
        return lambda result: self._progress(row_id, result)

    async def _flush(self, row_id: str) -> None:
        """Wait for every progress write of a row; all are awaited (none left with an
        exception nobody retrieves), then the first database failure is raised."""
        writes = self._writes.pop(row_id, [])
        results = await asyncio.gather(*writes, return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed

    async def settle_row(self, row_id: str, result: OrderResult) -> StagedOrder | None:
        """A ledger row's outcome, after every progress write of it."""
        with contextlib.suppress(SQLAlchemyError):
            await self._flush(row_id)  # the outcome below is written over them anyway
        saved = await asyncio.to_thread(self.engine.ledger.finish, row_id, result)
        self.engine.orders_changed()
        return saved

    async def _set(self, staged_id: str, status: str, message: str,
                   result: OrderResult | None = None) -> None:
        await asyncio.to_thread(self.engine.ledger.update, staged_id, status, message, result)
        self.engine.orders_changed()

    async def _refuse(self, staged: StagedOrder, result: OrderResult, dry: bool) -> None:
        """Refused before sending: STAGED -> REJECTED, unless another sender has taken
        the order meanwhile (then its outcome stands)."""
        engine = self.engine
        if dry:
            await self._finish(staged, result, dry)
            return
        moved = await asyncio.to_thread(engine.staged.transition, staged.id, "STAGED",
                                        "REJECTED", engine.clock.now(), result.reason)
        if moved:
            engine.orders_changed()
            await asyncio.to_thread(engine.audit_event, "order_rejected",
                                    f"{staged.symbol} {staged.expiration} {staged.strike:g}P: "
                                    f"{result.reason}", "WARNING", "executor", staged.symbol,
                                    result.as_dict())

    async def _finish(self, staged: StagedOrder, result: OrderResult, dry: bool,
                      decision: RiskDecision | None = None) -> None:
        engine = self.engine
        await self._flush(staged.id)
        if dry:
            # Nothing was sent: the staged order stays as it was.
            await asyncio.to_thread(engine.audit_event, "order_dry_run", result.reason,
                                    "INFO", "executor", staged.symbol, result.as_dict())
            return
        status = {"FILLED": "FILLED", "PARTIAL": "PARTIAL", "WORKING": "WORKING",
                  "CANCELLED": "CANCELLED", "REJECTED": "REJECTED", "UNKNOWN": "UNKNOWN"
                  }.get(result.outcome, "REJECTED")
        text = result.reason + "".join(f" · ⚠ {w}" for w in result.warnings)
        await self._set(staged.id, status, text, result)
        severity = "INFO" if result.success else "WARNING"
        await asyncio.to_thread(engine.audit_event, f"order_{result.outcome.lower()}",
                                f"{staged.symbol} {staged.expiration} {staged.strike:g}P: "
                                f"{text}", severity, "executor", staged.symbol,
                                result.as_dict())
        if result.filled > 0:
            await self.record_trade(staged, result, decision)

    async def record_trade(self, staged: StagedOrder, result: OrderResult,
                           decision: RiskDecision | None) -> Trade:
        """The trade and its entry snapshot (underlying at entry, greeks, IV rank,
        earnings), once per staged order."""
        engine = self.engine
        broker = engine.broker
        opp = opportunity_of(staged)
        underlying = iv = delta = None
        try:
            underlying = await broker.underlying_price(staged.symbol)
            quote = await broker.option_quote(opp.contract)
            iv, delta = quote.iv, quote.delta
        except BrokerError as exc:
            log.warning("Entry snapshot for %s incomplete: %s", staged.order_ref, exc)
        price = result.avg_fill_price
        if price is None:
            # The broker reported the fill without its price: record the staged limit
            # (the least this sale could have been), and say so.
            price = staged.limit_price
            log.warning("Trade %s: fill price not reported; entry recorded at the staged "
                        "limit $%.2f — check TWS", staged.order_ref, price)
        figures = {c.name: c.figures for c in decision.checks} if decision else {}
        earnings = figures.get("earnings", {}).get("earnings_date")
        # "Not within DTE" only when the earnings check knew; unavailable data is unknown.
        earnings_checked = decision is not None and any(
            c.name == "earnings" and c.status == "pass" for c in decision.checks)
        now = engine.wall_clock.now()
        trade = Trade(symbol=staged.symbol, strike=opp.strike, expiration=opp.expiration,
                      contracts=result.filled, entry_price=price,
                      entry_time=engine.clock.now(), order_ref=staged.order_ref,
                      perm_id=result.perm_id, commission=result.commission,
                      sector=get_sector(staged.symbol), created_at=now, updated_at=now)
        snapshot = TradeEntrySnapshot(
            trade_id=trade.id, underlying_price=underlying, option_bid=result.bid,
            option_ask=result.ask, delta=delta, iv=iv, iv_rank=opp.iv_rank,
            vix=decision.sizing.vix if decision and decision.sizing else None,
            earnings_date=date.fromisoformat(earnings) if earnings else None,
            earnings_in_dte=False if earnings_checked else None, sector=trade.sector,
            captured_at=engine.clock.now())
        saved = await asyncio.to_thread(engine.trades.record_entry, trade, snapshot,
                                        staged.id)
        log.info("Trade recorded: SELL %d %s %s %gP at $%.2f (%s)", saved.contracts,
                 saved.symbol, saved.expiration, saved.strike, saved.entry_price,
                 saved.order_ref)
        return saved
