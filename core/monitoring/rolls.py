"""RollManager (spec 5.3): defensive rolls, proposed to the operator, executed on approval.

Search: later expirations up to ROLL_MAX_DTE days out; the same strike (roll out) or
lower strikes down to 85% of it (roll down and out). A target must give a net credit
(its bid above the current put's ask), pass the governor's entry bounds (DTE bounded by
ROLL_MAX_DTE instead of BARCHART_DTE_MAX; OTM%, delta, IV rank, spread), have no earnings
on or before its expiration, and pass a what-if of the combined close+open (per-trade
cap, utilisation). Of the targets that pass, the lowest strike wins (safety first), then
the nearest expiration, then the larger credit.

Approval executes one combo (BAG) order — buy the old put, sell the new one — at the
natural net credit. A broker that refuses combos gets close-then-open: the new put is
sold only after the old one is bought back, and a failure in between is a CRITICAL
alert, never a silent half-roll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from core.broker.base import (
    Action,
    BrokerError,
    ComboLeg,
    Fill,
    OptionContract,
    OrderRequest,
    OrderType,
)
from core.clock import new_york
from core.db.tables import RollProposal, Trade, TradeEntrySnapshot
from core.execution.ledger import NewOrder
from core.market.sectors import get_sector
from core.models import Opportunity, OrderResult, PositionView
from core.risk.margin import clean, money

if TYPE_CHECKING:
    from core.engine import Engine

log = logging.getLogger("putdesk.monitoring.rolls")

LOWEST_STRIKE = 0.85


class RollManager:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings.rolls
        self._stops: dict[str, str | None] = {}  # working combo orderRef -> stop reason
        self.idle = asyncio.Event()  # set while no combo is being worked
        self.idle.set()

    def working(self) -> list[str]:
        return list(self._stops)

    def stop(self, order_ref: str, reason: str) -> bool:
        """Cancel a working roll combo at its next poll (a halt, a shutdown, a cancel)."""
        if order_ref not in self._stops:
            return False
        self._stops[order_ref] = self._stops[order_ref] or reason
        return True

    def stop_all(self, reason: str) -> list[str]:
        return [ref for ref in list(self._stops) if self.stop(ref, reason)]

    # --- proposing ------------------------------------------------------------------------

    async def evaluate_roll(self, v: PositionView) -> tuple[RollProposal | None, str]:
        """The best viable roll for a position, or None with the reason there is none."""
        engine = self.engine
        broker = engine.broker
        blocked = engine.exits.roll_blocker(v)
        if blocked is not None:
            return None, f"No roll: {blocked}"
        today = new_york(engine.clock.now()).date()
        try:
            chain = await broker.option_chain(v.symbol)
            old = await broker.option_quote(v.contract)
            underlying = await broker.underlying_price(v.symbol)
        except BrokerError as exc:
            return None, f"No roll: market data unavailable ({exc})"
        if chain is None or old.ask is None or underlying is None:
            return None, "No roll: no chain, no ask for the current put, or no underlying"
        latest = today + timedelta(days=self.settings.max_dte)
        expirations = [e for e in chain.expirations if v.contract.expiration < e <= latest]
        strikes = sorted((s for s in chain.strikes
                          if v.contract.strike * LOWEST_STRIKE <= s <= v.contract.strike),
                         reverse=True)
        why: dict[str, int] = {}
        viable: list[tuple[float, int, float, RollProposal]] = []
        for expiration in expirations:
            earnings = await engine.earnings.get_cached_earnings(v.symbol, expiration)
            if earnings is not None and earnings.earnings_in_dte:
                text = f"earnings on {earnings.earnings_date} within the new DTE"
                why[text] = why.get(text, 0) + len(strikes)
                continue
            for strike in strikes:
                contract = OptionContract(v.symbol, expiration, strike, "P")
                try:
                    q = await broker.option_quote(contract)
                except BrokerError:
                    continue
                if q.bid is None or q.bid - old.ask < 0.01:
                    why["no net credit"] = why.get("no net credit", 0) + 1
                    continue
                dte = (expiration - today).days
                # The governor's entry bounds (DTE to ROLL_MAX_DTE, OTM%, delta, IV rank,
                # spread): a roll target is a new short put like any other.
                bounds = await engine.governor.entry_checks(
                    Opportunity(v.symbol, expiration, strike, q.bid, underlying_price=underlying,
                                bid=q.bid, ask=q.ask, delta=q.delta),
                    dte_max=self.settings.max_dte)
                failed = next((c for c in bounds if c.failed), None)
                if failed is not None:
                    rule = f"{failed.name} bound"
                    why[rule] = why.get(rule, 0) + 1
                    continue
                credit = round(q.bid - old.ask, 2)
                proposal = RollProposal(
                    created_at=engine.clock.now(), updated_at=engine.clock.now(),
                    trade_id=v.trade_id, position_id=v.position_id, symbol=v.symbol,
                    contracts=v.contracts, old_strike=v.contract.strike,
                    old_expiration=v.contract.expiration, new_strike=strike,
                    new_expiration=expiration, new_dte=dte, new_delta=q.delta,
                    buyback_cost=old.ask, new_premium=q.bid, net_credit=credit,
                    kind="roll_out" if strike == v.contract.strike else "roll_down_out",
                    reason="")
                viable.append((strike, dte, -credit, proposal))
        viable.sort(key=lambda t: (t[0], t[1], t[2]))
        for _strike, _dte, _credit, proposal in viable:
            problem = await self._margin(proposal, v)
            if problem is None:
                loss = v.loss_multiple or 0.0
                kind = "roll out" if proposal.kind == "roll_out" else "roll down and out"
                proposal.reason = (f"Loss {loss:.0%} of premium approaches the stop; {kind} "
                                   f"for a net credit of ${proposal.net_credit:.2f}")
                return proposal, proposal.reason
            why[problem] = why.get(problem, 0) + 1
        detail = "; ".join(f"{k} ({n})" for k, n in sorted(why.items(), key=lambda kv: -kv[1]))
        return None, f"No viable roll: {detail or 'no later expirations within range'}"

    def combo(self, p: RollProposal, ref: str, limit: float) -> OrderRequest:
        old = OptionContract(p.symbol, p.old_expiration, p.old_strike, "P")
        new = OptionContract(p.symbol, p.new_expiration, p.new_strike, "P")
        return OrderRequest("SELL", p.contracts, ref, legs=(ComboLeg(old, "BUY"),
                                                            ComboLeg(new, "SELL")),
                            order_type=OrderType.LIMIT, limit_price=limit, symbol=p.symbol)

    async def _margin(self, p: RollProposal, v: PositionView) -> str | None:
        """What-if of the combined close+open: per-trade cap and utilisation."""
        engine = self.engine
        health = await engine.margin.account_health()
        try:
            wi = await asyncio.wait_for(
                engine.broker.what_if(self.combo(p, "whatif-roll", p.net_credit)),
                engine.settings.risk.whatif_timeout_seconds)
        except (TimeoutError, BrokerError) as exc:
            return f"what-if unavailable ({exc or 'timeout'})"
        before, after = clean(wi.init_margin_before), clean(wi.init_margin_after)
        if before is None or after is None:
            return "what-if figures unset"
        p.margin_change = after - before
        nlv = health.net_liquidation if health else None
        cap = nlv * engine.settings.risk.max_margin_per_trade_pct if nlv else None
        if cap is not None and p.margin_change > cap:
            return f"margin change {money(p.margin_change)} over the per-trade cap"
        elv = clean(wi.equity_with_loan_after)
        if elv and after / elv > engine.settings.risk.max_margin_utilization:
            return "utilisation after the roll over the limit"
        return None

    async def propose(self, v: PositionView) -> tuple[RollProposal | None, str]:
        """Evaluate and, when viable, keep the proposal for the operator (alerted);
        otherwise None and why there is no roll."""
        engine = self.engine
        proposal, reason = await self.evaluate_roll(v)
        if proposal is None:
            log.info("%s: %s", v.position_id, reason)
            return None, reason
        saved = await asyncio.to_thread(engine.rolls.save, proposal)
        engine.alert("WARNING", f"Roll proposed for {v.position_id}: {saved.reason} → "
                     f"{saved.new_expiration} {saved.new_strike:g}P (approve or reject)",
                     "roll_proposed", symbol=v.symbol, data={"proposal_id": saved.id})
        engine.rolls_changed()
        return saved, saved.reason

    # --- deciding -------------------------------------------------------------------------

    async def _decide(self, proposal_id: str, to: str, actor: str) -> RollProposal:
        """PENDING -> `to`, once (the database decides who was first), audited."""
        engine = self.engine
        ok = await asyncio.to_thread(engine.rolls.decide, proposal_id, "PENDING", to,
                                     actor, engine.clock.now())
        proposal = await asyncio.to_thread(engine.rolls.get, proposal_id)
        if proposal is None:
            raise ValueError(f"No roll proposal {proposal_id}")
        if not ok:
            raise ValueError(f"Roll proposal is {proposal.status}, not PENDING")
        await asyncio.to_thread(engine.audit_event, f"roll_{to.lower()}", f"Roll of "
                                f"{proposal.position_id} {to.lower()}", "INFO", actor,
                                proposal.symbol, {"proposal_id": proposal_id})
        return proposal

    async def reject(self, proposal_id: str, actor: str) -> RollProposal:
        engine = self.engine
        engine.refuse_if_read_only("rejecting a roll")
        proposal = await self._decide(proposal_id, "REJECTED", actor)
        engine.rolls_changed()
        # The exit proceeds as a close if its rule still says so (and is awaited: the
        # operator's rejection returns with the close's outcome).
        await engine.monitor_cycle(only=proposal.position_id)
        await engine.exits.settled()
        return (await asyncio.to_thread(engine.rolls.get, proposal_id)) or proposal

    async def approve(self, proposal_id: str, actor: str) -> RollProposal:
        engine = self.engine
        engine.refuse_if_read_only("approving a roll")
        proposal = await self._decide(proposal_id, "APPROVED", actor)
        status, text = await self._execute(proposal)
        proposal.status, proposal.result = status, text
        proposal.updated_at = engine.clock.now()
        saved = await asyncio.to_thread(engine.rolls.save, proposal)
        engine.alert("INFO" if status == "EXECUTED" else "CRITICAL",
                     f"Roll of {proposal.position_id}: {text}", "roll_result",
                     symbol=proposal.symbol)
        engine.rolls_changed()
        await engine.monitor_cycle(exits=False)
        return saved

    async def _execute(self, p: RollProposal) -> tuple[str, str]:
        engine = self.engine
        # A roll sells a new put: like any opening order it waits for trading to resume
        # (only the operator's close and exit-all, which only reduce risk, go out halted).
        halted, why = engine.kill_switch.is_halted()
        if halted:
            return "FAILED", f"Trading halted ({why}): not rolled"
        closed = engine.executor.market_gate(dry_run=False)
        if closed is not None:
            return "FAILED", closed
        broker = engine.broker
        old = OptionContract(p.symbol, p.old_expiration, p.old_strike, "P")
        new = OptionContract(p.symbol, p.new_expiration, p.new_strike, "P")
        try:
            q_old, q_new = await broker.option_quote(old), await broker.option_quote(new)
        except BrokerError as exc:
            return "FAILED", f"No quotes: {exc}"
        if q_old.ask is None or q_new.bid is None or q_new.bid - q_old.ask < 0.01:
            return "FAILED", (f"No longer a net credit (new bid {q_new.bid}, old ask "
                              f"{q_old.ask}): not rolled")
        credit = round(q_new.bid - q_old.ask, 2)
        row = await asyncio.to_thread(engine.ledger.open, NewOrder(
            kind="roll", symbol=p.symbol, contracts=p.contracts, action="SELL",
            limit_price=credit, active_key=f"roll:{p.position_id}", strike=p.new_strike,
            expiration=p.new_expiration, position_id=p.position_id, trade_id=p.trade_id,
            detail={"proposal_id": p.id, "buy": old.key, "sell": new.key},
            message=f"Roll combo at a net credit of ${credit:.2f}"), "putdesk-roll-")
        if row is None:
            return "FAILED", "Another order already works on this position: not rolled"
        ref = row.order_ref
        engine.orders_changed()
        self._stops[ref] = None
        self.idle.clear()
        try:
            status, text, fills = await self._work_combo(p, row.id, ref, credit)
        finally:
            self._stops.pop(ref, None)
            if not self._stops:
                self.idle.set()
        if status == "REFUSED":
            log.warning("Combo order refused (%s): close then open", text)
            return await self._close_then_open(p, old, new)
        if status != "FILLED":
            return "FAILED", text
        buy = next((f.price for f in fills if f.side == "BUY"), q_old.ask)
        sell = next((f.price for f in fills if f.side == "SELL"), q_new.bid)
        underlying = await broker.underlying_price(p.symbol)
        new_trade = await asyncio.to_thread(self._record, p, buy, sell, ref, underlying)
        p.new_trade_id = new_trade.id
        return "EXECUTED", (f"Rolled as one combo: bought back at ${buy:.2f}, sold "
                            f"{p.new_expiration} {p.new_strike:g}P at ${sell:.2f} "
                            f"(net credit ${sell - buy:.2f})")

    async def _work_combo(self, p: RollProposal, row_id: str, ref: str, credit: float
                          ) -> tuple[str, str, list[Fill]]:
        """Send the combo and follow it: filled, cancelled at the timeout, or at once when
        stopped (a halt: a roll sells a new put). Its ledger row gets the outcome."""
        engine = self.engine
        broker = engine.broker
        result = OrderResult("REJECTED", "", ref, p.contracts, action="SELL",
                             limit_price=credit, last_limit=credit)
        why = engine._risk_halt()
        if why is not None:
            result.reason = f"Trading halted ({why}): not rolled"
            await engine.executor.settle_row(row_id, result)
            return "FAILED", result.reason, []
        try:
            state = await broker.place_order(self.combo(p, ref, credit))
        except BrokerError as exc:
            result.reason = f"Combo refused: {exc}"
            await engine.executor.settle_row(row_id, result)
            if exc.code not in (None, 10043, 321) and "not available" not in str(exc):
                return "FAILED", result.reason, []
            return "REFUSED", str(exc), []
        result.order_id, result.perm_id = state.order_id, state.perm_id
        result.outcome, result.reason = "WORKING", f"Combo working at ${credit:.2f} credit"
        engine.executor.progress_writer(row_id)(result)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + engine.settings.execution.order_timeout_seconds
        fills: list[Fill] = []
        stopped: str | None = None
        cancelled = False
        while True:
            fills = [f for f in await broker.fills() if f.order_ref == ref]
            sold = sum(f.quantity for f in fills if f.side == "SELL")
            working = any(o.order_ref == ref for o in await broker.open_orders())
            if sold >= p.contracts or not working:
                break
            stopped = stopped or self._stops.get(ref)
            if not cancelled and (stopped is not None or loop.time() >= deadline):
                with contextlib.suppress(BrokerError):
                    await broker.cancel_order(state.order_id)
                cancelled = True
                deadline = loop.time() + 10.0  # for the cancel to be confirmed
            elif cancelled and loop.time() >= deadline:
                log.error("Roll combo %s: cancel not confirmed in 10 s; reconciliation "
                          "settles it", ref)
                break
            await asyncio.sleep(0.1)
        sold = sum(f.quantity for f in fills if f.side == "SELL")
        result.filled = sold
        result.commission = sum(f.commission or 0.0 for f in fills) or None
        if sold >= p.contracts:
            result.outcome, result.reason = "FILLED", "Rolled as one combo"
        elif sold > 0:
            result.outcome, result.reason = "PARTIAL", f"Combo filled {sold} of {p.contracts}"
        else:
            result.outcome = "CANCELLED"
            result.reason = ("Combo not filled: nothing rolled"
                             + (f" ({stopped})" if stopped else ""))
        await engine.executor.settle_row(row_id, result)
        return ("FILLED" if sold >= p.contracts else "FAILED"), result.reason, fills

    async def _close_then_open(self, p: RollProposal, old: OptionContract,
                               new: OptionContract) -> tuple[str, str]:
        engine = self.engine
        closed = await self._leg(p, old, "close", "BUY", None, "putdesk-rollc-")
        if closed.filled < p.contracts:
            return "FAILED", f"Close leg not filled ({closed.reason}): nothing opened"
        opened = await self._leg(p, new, "roll", "SELL", p.new_premium, "putdesk-rollo-")
        if opened.filled < p.contracts:
            engine.alert("CRITICAL", f"Roll of {p.position_id}: bought back but the new put "
                         f"did not fill ({opened.reason}) — position closed, not reopened",
                         "roll_result", symbol=p.symbol)
            await asyncio.to_thread(self._record, p, closed.avg_fill_price or 0.0, None,
                                    closed.order_ref, None)
            return "FAILED", f"Closed, but the new leg did not fill: {opened.reason}"
        underlying = await engine.broker.underlying_price(p.symbol)
        trade = await asyncio.to_thread(self._record, p, closed.avg_fill_price or 0.0,
                                        opened.avg_fill_price or p.new_premium,
                                        opened.order_ref, underlying)
        p.new_trade_id = trade.id
        return "EXECUTED", (f"Rolled close-then-open: bought back at "
                            f"${closed.avg_fill_price or 0:.2f}, sold at "
                            f"${opened.avg_fill_price or 0:.2f}")

    async def _leg(self, p: RollProposal, contract: OptionContract, kind: str,
                   action: Action, limit: float | None, prefix: str) -> OrderResult:
        """One leg of a close-then-open roll, as its own ledger row."""
        engine = self.engine
        row = await asyncio.to_thread(engine.ledger.open, NewOrder(
            kind=kind, symbol=p.symbol, contracts=p.contracts, action=action,
            limit_price=limit or 0.0, active_key=f"{kind}:{p.position_id}",
            strike=contract.strike, expiration=contract.expiration,
            position_id=p.position_id, trade_id=p.trade_id,
            detail={"proposal_id": p.id, "leg": contract.key}), prefix)
        if row is None:
            return OrderResult("REJECTED", "Another order already works on this position",
                               "", p.contracts, action=action)
        result = await engine.adaptive.place_order(
            contract, p.contracts, limit, row.order_ref, action=action,
            on_progress=engine.executor.progress_writer(row.id))
        await engine.executor.settle_row(row.id, result)
        return result

    def _record(self, p: RollProposal, buy: float, sell: float | None, ref: str,
                underlying: float | None) -> Trade:
        """Close the old trade ("rolled") and open the new one with roll_count + 1."""
        engine = self.engine
        now = engine.clock.now()
        old = engine.trades.get(p.trade_id) if p.trade_id else None
        if old is not None:
            old.status, old.exit_price, old.exit_time = "CLOSED", buy, now
            old.exit_reason = "rolled" if sell is not None else "roll: closed, not reopened"
            old.realized_pnl = (old.entry_price - buy) * 100 * old.contracts
            old.updated_at = now
            engine.trades.update(old)
        if sell is None:
            assert old is not None
            return old
        trade = Trade(symbol=p.symbol, strike=p.new_strike, expiration=p.new_expiration,
                      contracts=p.contracts, entry_price=sell, entry_time=now, order_ref=ref,
                      sector=get_sector(p.symbol), roll_count=(old.roll_count if old else 0) + 1,
                      rolled_from_trade_id=old.id if old else None, created_at=now,
                      updated_at=now)
        # The new leg is a new entry: its drop alerts measure from the roll.
        snapshot = TradeEntrySnapshot(trade_id=trade.id, underlying_price=underlying,
                                      option_bid=p.new_premium, delta=p.new_delta,
                                      sector=trade.sector, captured_at=now)
        return engine.trades.record_entry(trade, snapshot)
