"""RiskGovernor.pre_trade_check: every check in the spec's order, each with its status,
reason and the figures it used.

Chain: kill switch -> broker -> entry bounds (DTE, OTM%, delta, IV rank, spread: the
screening rules, core/screening/filters.py) -> duplicate -> earnings (spec 1.3 point 2)
-> daily loss -> weekly loss -> max drawdown -> max positions -> sector concentration ->
sizing -> margin (estimate, then WhatIf; per-trade cap; utilisation) -> ExcessLiquidity
-> VIX halt.

The first failure decides the rejection, but every check still runs so the operator
sees what each one saw. A loss-breaker breach also halts trading (persisted). The one
exception: a symbol or contract the broker does not know stops at the first check
("Unknown symbol: ..."): nothing after it has anything real to measure, and a typo must
not read as a margin alarm.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from core import fmt
from core.broker.base import (
    Broker,
    BrokerError,
    BrokerEvent,
    ConnectionChanged,
    FillReceived,
    OptionContract,
    OrderStatus,
    OrderStatusChanged,
    Position,
    PositionsChanged,
)
from core.clock import Clock, new_york
from core.config import Settings
from core.market.earnings import EarningsService
from core.market.sectors import get_sector
from core.models import CheckResult, Opportunity, RiskDecision, SizingResult, WhatIfResult
from core.risk import breakers
from core.risk.figures import pct_vs, vs
from core.risk.kill_switch import KillSwitch
from core.risk.margin import AccountHealth, MarginChecker, money, positive
from core.risk.sizing import PositionSizer
from core.screening.filters import entry_bounds
from core.screening.validator import iv_rank

log = logging.getLogger("putdesk.risk.governor")

VIX_CACHE = timedelta(seconds=60)
IV_RANK_CACHE = timedelta(seconds=60)
#: IBKR's "No security definition has been found for the request" (the simulator says
#: the same for a symbol outside its world).
NO_SECURITY_DEFINITION = 200


#: The book snapshot is kept until the broker reports a change (order status, fill,
#: positions, connection), and at most this long: another client's orders need not
#: raise an event here.
BOOK_MAX_AGE = timedelta(seconds=1)


@dataclass(frozen=True)
class Book:
    """The exposure a new trade joins: short option positions plus orders on their way.
    Membership and the per-symbol and per-sector counts are computed once per snapshot,
    so a check costs the same with 10 positions or 1,000."""

    held: tuple[OptionContract, ...]
    pending: tuple[OptionContract, ...]

    @functools.cached_property
    def held_set(self) -> frozenset[OptionContract]:
        return frozenset(self.held)

    @functools.cached_property
    def pending_set(self) -> frozenset[OptionContract]:
        return frozenset(self.pending)

    @functools.cached_property
    def contracts(self) -> frozenset[OptionContract]:
        return self.held_set | self.pending_set

    @functools.cached_property
    def by_symbol(self) -> Counter[str]:
        return Counter(c.symbol for c in self.contracts)

    @functools.cached_property
    def by_sector(self) -> Counter[str]:
        return Counter(get_sector(c.symbol) for c in self.contracts)

    def plus(self, pending: Sequence[OptionContract]) -> Book:
        """This book with more contracts on their way (staged orders), its counts carried
        over rather than recounted."""
        if not pending:
            return self
        book = Book(self.held, (*self.pending, *pending))
        new = set(pending) - self.contracts
        cache = book.__dict__  # cached_property's own storage: seeded, not recomputed
        cache["held_set"] = self.held_set
        cache["pending_set"] = self.pending_set | frozenset(pending)
        cache["contracts"] = self.contracts | new
        cache["by_symbol"] = self.by_symbol + Counter(c.symbol for c in new)
        cache["by_sector"] = self.by_sector + Counter(get_sector(c.symbol) for c in new)
        return book


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
        self._iv_ranks: dict[str, tuple[float | None, str, datetime]] = {}
        self._book: tuple[Book, datetime] | None = None
        broker.add_listener(self._on_broker_event)
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

    def _on_broker_event(self, event: BrokerEvent) -> None:
        if isinstance(event, (OrderStatusChanged, FillReceived, PositionsChanged,
                              ConnectionChanged)):
            self._book = None

    async def book(self, pending: Sequence[OptionContract] = (),
                   exclude_ref: str | None = None) -> Book | None:
        """Short option positions and working opening sells (except the order with
        `exclude_ref`: the one being re-validated), plus `pending`; None if the broker
        cannot say. The broker's part is a snapshot kept until the broker reports a
        change (at most BOOK_MAX_AGE)."""
        now = self.clock.now()
        if exclude_ref is None and self._book is not None \
                and timedelta(0) <= now - self._book[1] <= BOOK_MAX_AGE:
            return self._book[0].plus(pending)
        base = await self._load_book(exclude_ref)
        if base is not None and exclude_ref is None:
            self._book = (base, now)
        return base.plus(pending) if base is not None else None

    async def _load_book(self, exclude_ref: str | None) -> Book | None:
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
        return Book(held, working)

    async def complete(self, opportunity: Opportunity) -> tuple[Opportunity, str | None]:
        """Fill in what the operator did not give: the underlying price, the live quote
        (bid, ask, delta: the entry bounds need them) and, without a premium, the quote's
        mid (the bid when there is no ask). The second value is the reason the broker
        does not know the symbol or contract, else None."""
        changes: dict[str, object] = {}
        unknown: str | None = None
        try:
            if opportunity.underlying_price is None:
                changes["underlying_price"] = await self.broker.underlying_price(
                    opportunity.symbol)
            if (opportunity.premium is None or opportunity.bid is None
                    or opportunity.ask is None or opportunity.delta is None):
                quote = await self.broker.option_quote(opportunity.contract)
                # Live figures win over the ones the opportunity carried (a staged
                # order's delta is as old as its approval).
                changes.update(bid=quote.bid if quote.bid is not None else opportunity.bid,
                               ask=quote.ask if quote.ask is not None else opportunity.ask,
                               delta=quote.delta if quote.delta is not None
                               else opportunity.delta)
                if opportunity.premium is None:
                    price = quote.mid if quote.mid is not None else quote.bid
                    changes["premium"] = round(price, 2) if price is not None else None
        except BrokerError as exc:
            if exc.code == NO_SECURITY_DEFINITION:
                known_underlying = changes.get("underlying_price",
                                               opportunity.underlying_price) is not None
                what = opportunity.label if known_underlying else opportunity.symbol
                unknown = f"Unknown symbol: {what} (broker: {exc})"
            log.warning("Market data for %s unavailable: %s", opportunity.label, exc)
        completed = opportunity.but(**changes) if changes else opportunity
        return completed, unknown

    async def iv_rank(self, symbol: str) -> tuple[float | None, str]:
        """(52-week IV rank, why it is unknown) from the broker's IV history, cached a
        minute per symbol; the same computation as screening's validation."""
        now = self.clock.now()
        cached = self._iv_ranks.get(symbol)
        if cached is not None and now - cached[2] <= IV_RANK_CACHE:
            return cached[0], cached[1]
        rank: float | None = None
        try:
            history = await self.broker.iv_history(symbol)
            current = await self.broker.underlying_iv(symbol)
        except BrokerError as exc:
            note = f"IV history unavailable: {exc}"
        else:
            if not history or current is None:
                note = "no 52-week IV history" if not history else "no current IV"
            else:
                rank, note = iv_rank(current, history)
        if rank is None:
            log.warning("IV rank for %s unknown: %s", symbol, note)
        self._iv_ranks[symbol] = (rank, note, now)
        return rank, note

    async def entry_checks(self, opp: Opportunity, dte_max: int | None = None,
                           spread_at_send: bool = False) -> list[CheckResult]:
        """The entry bounds for `opp` (bid, ask, delta and underlying as given): what every
        new short put meets, whether from the CLI, the console, a candidate or a roll.
        `dte_max`: a roll's own horizon; `spread_at_send`: the executor measures the
        spread (MAX_EXECUTION_SPREAD_PCT) right before sending."""
        dte = (opp.expiration - new_york(self.clock.now()).date()).days
        u = opp.underlying_price
        otm = (u - opp.strike) / u if u is not None and u > 0 else None
        rank: float | None = opp.iv_rank
        note = ""
        if rank is None:
            rank, note = await self.iv_rank(opp.symbol)
        return entry_bounds(dte=dte, otm_pct=otm, delta=opp.delta, iv_rank=rank,
                            iv_rank_note=note, bid=opp.bid, ask=opp.ask,
                            screener=self.settings.screener,
                            validation=self.settings.validation, dte_max=dte_max,
                            spread_at_send=spread_at_send)

    # --- the chain ---------------------------------------------------------------------

    async def pre_trade_check(self, opportunity: Opportunity, *, whatif: bool = True,
                              pending: Sequence[OptionContract] = (),
                              exclude_ref: str | None = None) -> RiskDecision:
        """Size and check one opportunity. `whatif=False` is a preview: the margin check
        stops at the estimate and the decision cannot be staged. `pending`: contracts
        staged but not yet at the broker, counted as part of the book."""
        opportunity, unknown = await self.complete(opportunity)
        if unknown is not None:
            decision = RiskDecision(opportunity, (CheckResult(
                "symbol", "fail", unknown, {"symbol": opportunity.symbol}),), None, None,
                self.clock.now(), preview=not whatif)
            log.warning("Pre-trade %s: %s", opportunity.label, decision.summary)
            return decision
        health = await self.margin.account_health()
        vix = await self.vix()
        book = await self.book(pending, exclude_ref)
        nlv = health.net_liquidation if health else None
        sizing = self.sizer.calculate(opportunity, nlv, vix, quiet=True)
        opportunity = opportunity.but(contracts=sizing.contracts)

        checks: list[CheckResult] = [self._kill_switch(), self._connection()]
        # Re-validating a staged order at send time: the order executor judges the live
        # spread by its own limit (spec 3.2A: quotes at the open are wider).
        checks += await self.entry_checks(opportunity, spread_at_send=exclude_ref is not None)
        checks += [self._duplicate(opportunity, book), await self._earnings(opportunity)]
        loss_checks = breakers.evaluate(nlv, health.baselines if health else None, self.limits)
        checks += loss_checks
        checks += [self._max_positions(opportunity, book), self._sector(opportunity, book),
                   self._sizing(sizing)]
        margin_check, result = await self.margin.check_whatif_margin(
            opportunity, health, opportunity.underlying_price, whatif=whatif)
        checks += [margin_check, self._excess_liquidity(health, result),
                   self._vix_halt(vix)]
        decision = RiskDecision(opportunity, tuple(checks), sizing, result, self.clock.now(),
                                preview=not whatif)
        for breach in breakers.breached(loss_checks):
            await asyncio.to_thread(self.kill_switch.halt, breach.reason, "risk governor",
                                    breach.name)
        log.log(logging.INFO if decision.approved else logging.WARNING,
                "Pre-trade %s x%d: %s. %s", opportunity.label, opportunity.contracts,
                decision.summary, sizing.log_text)
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
        if opp.contract in book.held_set:
            return CheckResult("duplicate", "fail", f"Duplicate: already short {opp.label}",
                               {"held": True})
        if opp.contract in book.pending_set:
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
        total = len(book.contracts)
        same = book.by_symbol[opp.symbol]
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
        counts = book.by_sector
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
                               f"{pct_vs(pct, limit, 0)} exceeds {limit:.0%} limit ({of})",
                               figures)
        return CheckResult("sector_concentration", "pass", f"Sector {sector} concentration "
                           f"{pct_vs(pct, limit, 0)} within {limit:.0%} limit ({of})", figures)

    def _sizing(self, sizing: SizingResult) -> CheckResult:
        """Spec 2.3A's minimum of 1 contract stands, but when it overrides a risk-based
        size of 0 the operator is told what that one contract risks against the budget."""
        figures = sizing.as_dict()
        per = sizing.loss_per_contract
        budget = sizing.max_risk
        if sizing.equity is None or budget is None:
            return CheckResult("sizing", "warn", f"{fmt.contracts(sizing.contracts)} at the "
                               "minimum: equity unknown, the risk budget cannot be measured",
                               figures)
        if sizing.risk_based == 0 and sizing.contracts >= 1:
            loss = per * sizing.contracts
            times = loss / budget if budget > 0 else math.inf
            return CheckResult("sizing", "warn", f"Minimum of 1 contract overrides the "
                               f"risk-based size 0: practical loss {money(loss)} "
                               f"({self.settings.sizing.practical_loss_pct:.0%} of strike) is "
                               f"{times:.1f}x the risk budget {money(budget)} "
                               f"({self.settings.sizing.max_risk_per_trade_pct:.0%} of NLV)",
                               figures)
        loss = per * sizing.contracts
        return CheckResult("sizing", "pass", f"{fmt.contracts(sizing.contracts)}: practical loss "
                           f"{money(loss)} within the risk budget {money(budget)}", figures)

    def _excess_liquidity(self, health: AccountHealth | None,
                          result: WhatIfResult | None) -> CheckResult:
        """Spec 6.2A on the account now, and on the account after the trade when the
        what-if says what that is; the lower ratio decides. A ratio over a NetLiquidation
        that is not a positive number means nothing: such an account fails."""
        if health is None:
            return CheckResult("excess_liquidity", "fail", "Account unavailable: cannot "
                               "confirm the account is away from a margin call")
        raw_nlv = health.values.net_liquidation
        if positive(raw_nlv) is None:
            return CheckResult("excess_liquidity", "fail", "NetLiquidation "
                               f"{health.nlv_text} is not a usable positive figure: "
                               "ExcessLiquidity cannot be measured against it",
                               {"net_liquidation": raw_nlv})
        if health.excess_ratio is None:
            return CheckResult("excess_liquidity", "fail", "ExcessLiquidity unavailable: "
                               "cannot confirm the account is away from a margin call")
        nlv = health.net_liquidation or 0.0
        ratio, which = health.excess_ratio, "now"
        amount = health.values.excess_liquidity
        figures: dict[str, object] = {"excess_liquidity": amount, "net_liquidation": nlv,
                                      "ratio_now": ratio}
        if (result is not None and result.source == "whatif"
                and result.equity_with_loan_after is not None
                and result.maint_margin_after is not None and nlv > 0):
            excess_after = result.equity_with_loan_after - result.maint_margin_after
            figures.update(excess_liquidity_after=excess_after, ratio_after=excess_after / nlv)
            if excess_after / nlv < ratio:
                ratio, which, amount = excess_after / nlv, "after the trade", excess_after
        reject = self.limits.excess_liquidity_reject_pct
        warn = self.limits.excess_liquidity_warn_pct
        if ratio < reject:
            return CheckResult("excess_liquidity", "fail", f"ExcessLiquidity dangerously low "
                               f"({pct_vs(ratio, reject)} of NLV {which}; minimum "
                               f"{reject:.0%})", figures)
        if ratio < warn:
            log.warning("ExcessLiquidity low: %s of NLV %s (warning below %.0f%%)",
                        pct_vs(ratio, warn), which, warn * 100)
            return CheckResult("excess_liquidity", "warn", f"ExcessLiquidity low "
                               f"({pct_vs(ratio, warn)} of NLV {which}; warning below "
                               f"{warn:.0%})", figures)
        return CheckResult("excess_liquidity", "pass", f"ExcessLiquidity "
                           f"{pct_vs(ratio, warn)} of NLV {which} ({money(amount)})", figures)

    def _vix_halt(self, vix: float | None) -> CheckResult:
        threshold = self.limits.vix_halt_threshold
        figures = {"vix": vix, "threshold": threshold}
        if vix is None:
            return CheckResult("vix_halt", "warn", "VIX unavailable: sized at the extreme-VIX "
                               f"factor {self.sizer.vix_factor(None):g}x", figures)
        shown = vs(vix, threshold, 1)
        if vix > threshold:
            return CheckResult("vix_halt", "fail", f"VIX {shown} above {threshold:g}: no new "
                               "positions", figures)
        word = "at" if vix == threshold else "below"
        return CheckResult("vix_halt", "pass", f"VIX {shown} {word} {threshold:g}", figures)
