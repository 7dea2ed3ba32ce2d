"""RiskGovernor.pre_trade_check: every check in the spec's order, each with its status,
reason and the figures it used.

Chain: kill switch -> duplicate -> earnings (spec 1.3 point 2) -> daily loss -> weekly
loss -> max drawdown -> max positions -> sector concentration -> margin (estimate, then
WhatIf; per-trade cap; utilisation) -> ExcessLiquidity -> VIX halt.

The first failure decides the rejection, but every check still runs so the operator
sees what each one saw. A loss-breaker breach also halts trading (persisted).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.broker.base import Broker, BrokerError, OptionContract, OrderStatus, Position
from core.clock import Clock, new_york
from core.config import Settings
from core.market.earnings import EarningsService
from core.market.sectors import get_sector
from core.models import CheckResult, Opportunity, RiskDecision, WhatIfResult
from core.risk import breakers
from core.risk.kill_switch import KillSwitch
from core.risk.margin import AccountHealth, MarginChecker, money
from core.risk.sizing import PositionSizer

log = logging.getLogger("putdesk.risk.governor")

VIX_CACHE = timedelta(seconds=60)


@dataclass(frozen=True)
class Book:
    """The exposure a new trade joins: short option positions plus orders on their way."""

    held: tuple[OptionContract, ...]
    pending: tuple[OptionContract, ...]

    @property
    def contracts(self) -> list[OptionContract]:
        return [*self.held, *(c for c in self.pending if c not in self.held)]


class RiskGovernor:
    def __init__(self, settings: Settings, broker: Broker, kill_switch: KillSwitch,
                 margin: MarginChecker, earnings: EarningsService, clock: Clock,
                 sizer: PositionSizer | None = None) -> None:
        self.settings = settings
        self.limits = settings.risk
        self.broker = broker
        self.kill_switch = kill_switch
        self.margin = margin
        self.earnings = earnings
        self.clock = clock
        self.sizer = sizer or PositionSizer(settings)
        self._vix: tuple[float | None, datetime] | None = None
        log.info("Risk governor: daily %.0f%%, weekly %.0f%%, drawdown %.0f%%, %d positions, "
                 "sector %.0f%%, per-trade margin cap %.0f%% of NLV, VIX halt %g; "
                 "Earnings check: Enabled",
                 self.limits.max_daily_loss_pct * 100, self.limits.max_weekly_loss_pct * 100,
                 self.limits.max_drawdown_pct * 100, self.limits.max_positions,
                 self.limits.max_sector_concentration_pct * 100,
                 self.limits.max_margin_per_trade_pct * 100, self.limits.vix_halt_threshold)

    # --- inputs ------------------------------------------------------------------------

    async def vix(self) -> float | None:
        now = self.clock.now()
        if self._vix is not None and now - self._vix[1] <= VIX_CACHE:
            return self._vix[0]
        try:
            value = await self.broker.vix()
        except BrokerError as exc:
            log.warning("VIX unavailable: %s", exc)
            value = None
        self._vix = (value, now)
        return value

    async def book(self, pending: Sequence[OptionContract] = (),
                   exclude_ref: str | None = None) -> Book | None:
        """Short option positions and working opening sells (except the order with
        `exclude_ref`: the one being re-validated); None if the broker cannot say."""
        try:
            positions: list[Position] = await self.broker.positions()
            orders = await self.broker.open_orders()
        except BrokerError as exc:
            log.warning("Positions unavailable: %s", exc)
            return None
        held = tuple(p.contract for p in positions
                     if p.sec_type == "OPT" and p.contract is not None and p.quantity < 0)
        working = tuple(o.request.contract for o in orders
                        if o.request.contract is not None and o.request.action == "SELL"
                        and (exclude_ref is None or o.order_ref != exclude_ref)
                        and o.status not in (OrderStatus.FILLED, OrderStatus.CANCELLED,
                                             OrderStatus.INACTIVE))
        return Book(held, (*working, *pending))

    async def complete(self, opportunity: Opportunity) -> Opportunity:
        """Fill in what the operator did not give: the underlying price and, without a
        premium, the live quote's mid (the bid when there is no ask)."""
        changes: dict[str, object] = {}
        try:
            if opportunity.underlying_price is None:
                changes["underlying_price"] = await self.broker.underlying_price(
                    opportunity.symbol)
            if opportunity.premium is None or opportunity.bid is None:
                quote = await self.broker.option_quote(opportunity.contract)
                changes.update(bid=quote.bid, ask=quote.ask,
                               delta=quote.delta if opportunity.delta is None
                               else opportunity.delta)
                if opportunity.premium is None:
                    price = quote.mid if quote.mid is not None else quote.bid
                    changes["premium"] = round(price, 2) if price is not None else None
        except BrokerError as exc:
            log.warning("Market data for %s unavailable: %s", opportunity.label, exc)
        return opportunity.but(**changes) if changes else opportunity

    # --- the chain ---------------------------------------------------------------------

    async def pre_trade_check(self, opportunity: Opportunity, *, whatif: bool = True,
                              pending: Sequence[OptionContract] = (),
                              exclude_ref: str | None = None) -> RiskDecision:
        """Size and check one opportunity. `whatif=False` is a preview: the margin check
        stops at the estimate and the decision cannot be staged. `pending`: contracts
        staged but not yet at the broker, counted as part of the book."""
        opportunity = await self.complete(opportunity)
        health = await self.margin.account_health()
        vix = await self.vix()
        book = await self.book(pending, exclude_ref)
        nlv = health.net_liquidation if health else None
        sizing = self.sizer.calculate(opportunity, nlv, vix)
        opportunity = opportunity.but(contracts=sizing.contracts)

        checks: list[CheckResult] = [self._kill_switch(), self._connection(),
                                     self._duplicate(opportunity, book),
                                     await self._earnings(opportunity)]
        loss_checks = breakers.evaluate(nlv, health.baselines if health else None, self.limits)
        checks += loss_checks
        checks += [self._max_positions(opportunity, book), self._sector(opportunity, book)]
        margin_check, result = await self.margin.check_whatif_margin(
            opportunity, health, opportunity.underlying_price, whatif=whatif)
        checks += [margin_check, self._excess_liquidity(health, result),
                   self._vix_halt(vix)]
        decision = RiskDecision(opportunity, tuple(checks), sizing, result, self.clock.now(),
                                preview=not whatif)
        for breach in breakers.breached(loss_checks):
            await asyncio.to_thread(self.kill_switch.halt, breach.reason, "risk governor")
        log.log(logging.INFO if decision.approved else logging.WARNING, "Pre-trade %s x%d: %s",
                opportunity.label, opportunity.contracts, decision.summary)
        return decision

    def _kill_switch(self) -> CheckResult:
        halted, reason = self.kill_switch.is_halted()
        if halted:
            return CheckResult("kill_switch", "fail", f"Trading halted: {reason}",
                               {"halted": True})
        return CheckResult("kill_switch", "pass", "Trading active", {"halted": False})

    def _connection(self) -> CheckResult:
        # Checked here as well as at send time: a decision made while the broker is down
        # rests on cached figures and must not be staged.
        if not self.broker.connected:
            return CheckResult("broker", "fail", "Broker disconnected: no new orders until "
                               "it is back and reconciled", {"connected": False})
        return CheckResult("broker", "pass", "Broker connected", {"connected": True})

    def _duplicate(self, opp: Opportunity, book: Book | None) -> CheckResult:
        if book is None:
            return CheckResult("duplicate", "fail", "Positions unavailable: cannot rule out a "
                               "duplicate")
        if opp.contract in book.held:
            return CheckResult("duplicate", "fail", f"Duplicate: already short {opp.label}",
                               {"held": True})
        if opp.contract in book.pending:
            return CheckResult("duplicate", "fail", f"Duplicate: an order for {opp.label} is "
                               "already working or staged", {"pending": True})
        return CheckResult("duplicate", "pass", f"No open position or order in {opp.label}")

    async def _earnings(self, opp: Opportunity) -> CheckResult:
        dte = (opp.expiration - new_york(self.clock.now()).date()).days
        figures: dict[str, object] = {"expiration": opp.expiration.isoformat(), "dte": dte}
        check = await self.earnings.get_cached_earnings(opp.symbol, opp.expiration)
        if check is None:
            log.warning("WARNING: earnings data unavailable for %s: passing (spec 1.3)",
                        opp.symbol)
            return CheckResult("earnings", "warn", "WARNING: earnings data unavailable — "
                               "passed without an earnings check", figures)
        figures.update(earnings_date=check.earnings_date.isoformat()
                       if check.earnings_date else None, source=check.source)
        if check.earnings_in_dte and check.earnings_date is not None:
            log.warning("BLOCKED: %s has earnings on %s, within DTE window", opp.symbol,
                        check.earnings_date)
            return CheckResult("earnings", "fail", f"Earnings on {check.earnings_date} falls "
                               f"within DTE ({dte} days to {opp.expiration})", figures)
        if check.earnings_date is None:
            return CheckResult("earnings", "pass", "No upcoming earnings report", figures)
        return CheckResult("earnings", "pass", f"Next earnings {check.earnings_date}, after "
                           f"expiration {opp.expiration}", figures)

    def _max_positions(self, opp: Opportunity, book: Book | None) -> CheckResult:
        if book is None:
            return CheckResult("max_positions", "fail", "Positions unavailable: cannot count "
                               "open positions")
        contracts = book.contracts
        total = len(contracts)
        same = sum(1 for c in contracts if c.symbol == opp.symbol)
        figures = {"open": total, "limit": self.limits.max_positions, "symbol_open": same,
                   "symbol_limit": self.limits.max_positions_per_symbol}
        if total >= self.limits.max_positions:
            return CheckResult("max_positions", "fail", f"{total} of {self.limits.max_positions}"
                               " positions open: limit reached", figures)
        if same >= self.limits.max_positions_per_symbol:
            return CheckResult("max_positions", "fail", f"{same} {opp.symbol} positions open: "
                               f"per-symbol limit {self.limits.max_positions_per_symbol}",
                               figures)
        return CheckResult("max_positions", "pass", f"{total + 1} of "
                           f"{self.limits.max_positions} positions after this trade "
                           f"({same + 1} in {opp.symbol})", figures)

    def _sector(self, opp: Opportunity, book: Book | None) -> CheckResult:
        """Share of the book in the new trade's sector, measured against the larger of the
        book after the trade and the planned book (MAX_POSITIONS). The literal
        count / total-including-new would reject every first trade (1/1 = 100%); against
        a 10-slot book the spec's examples hold: 3 of 9 Technology + 1 -> 4/10 = 40%,
        rejected; 3 Technology + 1 Healthcare -> 1/10, approved; a first trade -> 1/10."""
        if book is None:
            return CheckResult("sector_concentration", "fail", "Positions unavailable: cannot "
                               "measure sector concentration")
        sector = get_sector(opp.symbol)
        counts = Counter(get_sector(c.symbol) for c in book.contracts)
        count = counts[sector] + 1
        total = len(book.contracts) + 1
        denominator = max(total, self.limits.max_positions)
        pct = count / denominator
        limit = self.limits.max_sector_concentration_pct
        of = (f"{count} of {total} positions" if denominator == total else
              f"{count} of {denominator} position slots; {total} held after this trade")
        figures = {"sector": sector, "count": count, "positions_after": total,
                   "denominator": denominator, "pct": pct, "limit_pct": limit,
                   "by_sector": dict(counts)}
        if pct > limit + 1e-12:
            return CheckResult("sector_concentration", "fail", f"Sector {sector} concentration "
                               f"{pct:.0%} exceeds {limit:.0%} limit ({of})", figures)
        return CheckResult("sector_concentration", "pass", f"Sector {sector} concentration "
                           f"{pct:.0%} within {limit:.0%} limit ({of})", figures)

    def _excess_liquidity(self, health: AccountHealth | None,
                          result: WhatIfResult | None) -> CheckResult:
        """Spec 6.2A on the account now, and on the account after the trade when the
        what-if says what that is; the lower ratio decides."""
        if health is None or health.excess_ratio is None:
            return CheckResult("excess_liquidity", "fail", "ExcessLiquidity unavailable: "
                               "cannot confirm the account is away from a margin call")
        nlv = health.net_liquidation or 0.0
        ratio, which = health.excess_ratio, "now"
        amount = health.values.excess_liquidity
        figures: dict[str, object] = {"excess_liquidity": amount, "net_liquidation": nlv,
                                      "ratio_now": ratio}
        if (result is not None and result.source == "whatif"
                and result.equity_with_loan_after is not None
                and result.maint_margin_after is not None and nlv):
            excess_after = result.equity_with_loan_after - result.maint_margin_after
            figures.update(excess_liquidity_after=excess_after, ratio_after=excess_after / nlv)
            if excess_after / nlv < ratio:
                ratio, which, amount = excess_after / nlv, "after the trade", excess_after
        reject = self.limits.excess_liquidity_reject_pct
        warn = self.limits.excess_liquidity_warn_pct
        if ratio < reject:
            return CheckResult("excess_liquidity", "fail", f"ExcessLiquidity dangerously low "
                               f"({ratio:.1%} of NLV {which}; minimum {reject:.0%})", figures)
        if ratio < warn:
            log.warning("ExcessLiquidity low: %.1f%% of NLV %s (warning below %.0f%%)",
                        ratio * 100, which, warn * 100)
            return CheckResult("excess_liquidity", "warn", f"ExcessLiquidity low ({ratio:.1%} "
                               f"of NLV {which}; warning below {warn:.0%})", figures)
        return CheckResult("excess_liquidity", "pass", f"ExcessLiquidity {ratio:.1%} of NLV "
                           f"{which} ({money(amount)})", figures)

    def _vix_halt(self, vix: float | None) -> CheckResult:
        threshold = self.limits.vix_halt_threshold
        figures = {"vix": vix, "threshold": threshold}
        if vix is None:
            return CheckResult("vix_halt", "warn", "VIX unavailable: sized at the extreme-VIX "
                               f"factor {self.sizer.vix_factor(None):g}x", figures)
        if vix > threshold:
            return CheckResult("vix_halt", "fail", f"VIX {vix:.1f} above {threshold:g}: no new "
                               "positions", figures)
        return CheckResult("vix_halt", "pass", f"VIX {vix:.1f} below {threshold:g}", figures)
