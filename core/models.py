"""Domain types shared across the engine: candidates from screening and the reasons
they were turned away."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import date, datetime
from typing import Any, Literal

from core.broker.base import OptionContract

Stage = Literal["parse", "filter", "earnings", "validation", "scoring"]


@dataclass(frozen=True)
class Candidate:
    """A short-put candidate, normalised from a Barchart CSV row or API result.

    Percent values are fractions (0.155, not 15.5). `delta` is the contract delta,
    negative for puts whatever sign the source used. `dte` and `otm_pct` are recomputed
    from `today` and the source's underlying price, never taken from the source.
    """

    symbol: str
    expiration: date
    strike: float
    underlying_price: float
    dte: int
    otm_pct: float
    bid: float | None
    ask: float | None = None
    mid: float | None = None
    last: float | None = None
    volume: int | None = None
    open_interest: int | None = None
    raw_iv: float | None = None  # raw implied volatility from the source (not a rank)
    source_iv_rank: float | None = None  # Barchart's own 1-year IV rank, informational
    delta: float | None = None
    source: Literal["csv", "api"] = "csv"
    source_row: int | None = None
    right: Literal["P"] = "P"
    # Filled by later stages:
    earnings_date: date | None = None
    earnings_known: bool | None = None
    live_bid: float | None = None
    live_ask: float | None = None
    spread_pct: float | None = None
    iv_rank: float | None = None
    current_iv: float | None = None
    option_iv: float | None = None  # the option's own IV from the live quote
    # Figures a trader reads (filled at scoring; None when they cannot be computed):
    margin_per_contract: float | None = None  # IBKR's Reg T rule, $
    return_on_margin: float | None = None  # premium / margin, this trade
    annualised_return: float | None = None  # return_on_margin x 365 / DTE
    prob_otm: float | None = None  # N(d2): probability the put expires out of the money
    prob_otm_inputs: dict[str, float] = field(default_factory=dict)  # iv, rate, years
    score: float | None = None
    score_parts: dict[str, float] = field(default_factory=dict)  # each a 0..1 score
    sector: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def contract(self) -> OptionContract:
        return OptionContract(self.symbol, self.expiration, self.strike, "P")

    @property
    def key(self) -> str:
        return self.contract.key

    @property
    def premium(self) -> float | None:
        """What a sale would collect per share: the live bid when validated, else the source's."""
        return self.live_bid if self.live_bid is not None else self.bid

    @property
    def premium_per_contract(self) -> float | None:
        return None if self.premium is None else round(self.premium * 100, 2)

    # A frozen dataclass's __init__ sets each of these 35 fields through
    # object.__setattr__ (~4 us a candidate; dataclasses.replace ~8 us). A screen builds
    # and rescores hundreds, so `many` and `but` give the new instance its __dict__
    # whole: the same object (same fields, defaults and fresh dicts) in ~1 us.

    @classmethod
    def many(cls, names: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[Candidate]:
        """`Candidate(**dict(zip(names, row)))` for each row."""
        unknown = set(names) - _FIELDS
        if unknown:
            raise TypeError(f"Candidate has no field(s) {', '.join(sorted(unknown))}")
        absent = _REQUIRED - set(names)
        if absent:
            raise TypeError(f"Candidate needs {', '.join(sorted(absent))}")
        out: list[Candidate] = []
        new, put = object.__new__, object.__setattr__
        for row in rows:
            values = _DEFAULTS.copy()
            for name, factory in _FACTORIES:
                values[name] = factory()
            values.update(zip(names, row, strict=True))
            c = new(cls)
            put(c, "__dict__", values)
            out.append(c)
        return out

    def but(self, **changes: Any) -> Candidate:
        """`dataclasses.replace(self, **changes)`."""
        if not changes.keys() <= _FIELDS:
            raise TypeError(f"Candidate has no field(s) "
                            f"{', '.join(sorted(changes.keys() - _FIELDS))}")
        return self.from_fields({**self.__dict__, **changes})

    @classmethod
    def from_fields(cls, values: dict[str, Any]) -> Candidate:
        """The candidate whose fields are `values`, taken as they are: every field, no
        other key (a copy of another candidate's __dict__ with changes, as `but` and the
        batch scoring make). Not checked: that is its point."""
        c = object.__new__(cls)
        object.__setattr__(c, "__dict__", values)
        return c

    def with_warning(self, text: str) -> Candidate:
        return self.but(warnings=(*self.warnings, text))


_FIELDS = frozenset(f.name for f in fields(Candidate))
_REQUIRED = frozenset(f.name for f in fields(Candidate)
                      if f.default is MISSING and f.default_factory is MISSING)
_DEFAULTS = {f.name: f.default for f in fields(Candidate) if f.default is not MISSING}
_FACTORIES = [(f.name, f.default_factory) for f in fields(Candidate)
              if f.default_factory is not MISSING]


@dataclass(frozen=True)
class Rejection:
    """A candidate (or source row) turned away, with the stage and a readable reason."""

    symbol: str
    strike: float | None
    expiration: date | None
    stage: Stage
    reason: str
    source_row: int | None = None

    @staticmethod
    def of(candidate: Candidate, stage: Stage, reason: str) -> Rejection:
        return Rejection(candidate.symbol, candidate.strike, candidate.expiration, stage, reason,
                         candidate.source_row)

    def as_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "strike": self.strike,
                "expiration": self.expiration.isoformat() if self.expiration else None,
                "stage": self.stage, "reason": self.reason, "row": self.source_row}


# --- pre-trade risk ------------------------------------------------------------------

CheckStatus = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Opportunity:
    """One short put to be sized and checked: from a candidate or typed by the operator.

    `premium` is the per-share limit the sale aims for (None: no quote, cannot be priced).
    `contracts` is 0 until the sizer sets it; `requested_contracts` is the operator's
    upper bound, if they gave one.
    """

    symbol: str
    expiration: date
    strike: float
    premium: float | None
    contracts: int = 0
    requested_contracts: int | None = None
    underlying_price: float | None = None
    bid: float | None = None
    ask: float | None = None
    delta: float | None = None
    source: str = "manual"
    score: float | None = None
    iv_rank: float | None = None

    @property
    def contract(self) -> OptionContract:
        return OptionContract(self.symbol, self.expiration, self.strike, "P")

    @functools.cached_property
    def label(self) -> str:
        return f"{self.symbol} {self.expiration:%Y-%m-%d} {self.strike:g}P"

    def but(self, **changes: Any) -> Opportunity:
        return replace(self, **changes)

    @staticmethod
    def from_candidate(c: Candidate) -> Opportunity:
        """The limit is the live mid when the candidate was validated (what the adaptive
        executor starts from), else the bid it was screened at."""
        bid = c.live_bid if c.live_bid is not None else c.bid
        ask = c.live_ask if c.live_ask is not None else c.ask
        premium = round((bid + ask) / 2, 2) if bid is not None and ask is not None else bid
        return Opportunity(c.symbol, c.expiration, c.strike, premium,
                           underlying_price=c.underlying_price, bid=bid, ask=ask,
                           delta=c.delta, source=c.source, score=c.score, iv_rank=c.iv_rank)

    def as_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "strike": self.strike,
                "expiration": self.expiration.isoformat(), "premium": self.premium,
                "contracts": self.contracts, "requested_contracts": self.requested_contracts,
                "underlying_price": self.underlying_price, "bid": self.bid, "ask": self.ask,
                "delta": self.delta, "source": self.source, "iv_rank": self.iv_rank}


@dataclass(frozen=True)
class CheckResult:
    """One governor check: what it saw (`figures`), what it concluded and why."""

    name: str
    status: CheckStatus
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "reason": self.reason,
                "figures": self.figures}


@dataclass(frozen=True)
class SizingResult:
    """How many contracts, and why (spec 2.3A fixed fractional x 6.4 VIX factor)."""

    contracts: int
    fixed: int
    risk_based: int | None
    equity: float | None
    max_risk: float | None
    loss_per_contract: float
    vix: float | None
    vix_factor: float
    requested: int | None = None
    vix_halted: bool = False
    explanation: str = ""
    log_text: str = ""  # the spec's "Position size: ..." and "VIX=..." lines, as logged

    def as_dict(self) -> dict[str, Any]:
        return {"contracts": self.contracts, "fixed": self.fixed, "risk_based": self.risk_based,
                "equity": self.equity, "max_risk": self.max_risk,
                "practical_loss_per_contract": self.loss_per_contract, "vix": self.vix,
                "vix_factor": self.vix_factor, "requested": self.requested,
                "vix_halted": self.vix_halted, "explanation": self.explanation}


@dataclass(frozen=True)
class WhatIfResult:
    """Margin impact of a trade: IBKR's what-if figures, or the Layer 1 estimate when the
    what-if was unavailable (`source` says which; `fallback_reason` why)."""

    source: Literal["whatif", "estimate"]
    estimated_margin: float | None
    init_margin_before: float | None
    init_margin_after: float | None
    margin_impact: float | None
    maint_margin_after: float | None
    equity_with_loan_after: float | None
    commission: float | None
    per_trade_cap: float | None = None
    utilization_after: float | None = None
    fallback_reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "estimated_margin": self.estimated_margin,
                "init_margin_before": self.init_margin_before,
                "init_margin_after": self.init_margin_after, "margin_impact": self.margin_impact,
                "maint_margin_after": self.maint_margin_after,
                "equity_with_loan_after": self.equity_with_loan_after,
                "commission": self.commission, "per_trade_cap": self.per_trade_cap,
                "utilization_after": self.utilization_after,
                "fallback_reason": self.fallback_reason}


@dataclass(frozen=True)
class RiskDecision:
    """The governor's answer: every check in chain order. Approved only when no check
    failed; `rejected_by` names the first failure (the one that decided)."""

    opportunity: Opportunity
    checks: tuple[CheckResult, ...]
    sizing: SizingResult | None
    whatif: WhatIfResult | None
    decided_at: datetime
    preview: bool = False  # True: the what-if was not requested; never staged

    @property
    def approved(self) -> bool:
        return bool(self.checks) and not any(c.failed for c in self.checks)

    @property
    def rejected_by(self) -> CheckResult | None:
        return next((c for c in self.checks if c.failed), None)

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "warn"]

    @property
    def summary(self) -> str:
        first = self.rejected_by
        if first is not None:
            return f"REJECTED by {first.name}: {first.reason}"
        if self.warnings:
            return f"APPROVED with {len(self.warnings)} warning(s)"
        return "APPROVED"

    def as_dict(self) -> dict[str, Any]:
        first = self.rejected_by
        return {"approved": self.approved,
                "contracts": self.opportunity.contracts,
                "opportunity": self.opportunity.as_dict(),
                "rejected_by": first.name if first else None,
                "reason": first.reason if first else None, "summary": self.summary,
                "sizing": self.sizing.as_dict() if self.sizing else None,
                "checks": [c.as_dict() for c in self.checks],
                "whatif": self.whatif.as_dict() if self.whatif else None,
                "decided_at": self.decided_at.isoformat(), "preview": self.preview}


# --- execution -----------------------------------------------------------------------

OrderOutcome = Literal["FILLED", "PARTIAL", "WORKING", "CANCELLED", "REJECTED", "DRY_RUN",
                       "UNKNOWN"]


@dataclass
class OrderResult:
    """What became of one order attempt. `limit_deviation` is the live limit's distance
    from the staged limit as a fraction of the staged limit (spec 3.2B)."""

    outcome: OrderOutcome
    reason: str
    order_ref: str
    contracts: int = 0
    action: Literal["BUY", "SELL"] = "SELL"
    staged_limit: float | None = None
    limit_price: float | None = None  # the first live limit sent (or that would be)
    last_limit: float | None = None  # after repricing
    limit_deviation: float | None = None
    bid: float | None = None
    ask: float | None = None
    spread_pct: float | None = None
    order_id: int | None = None
    perm_id: int | None = None
    filled: int = 0
    avg_fill_price: float | None = None
    commission: float | None = None
    reprices: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.outcome in ("FILLED", "PARTIAL", "WORKING", "DRY_RUN")

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "success": self.success, "reason": self.reason,
                "action": self.action,
                "order_ref": self.order_ref, "contracts": self.contracts,
                "staged_limit": self.staged_limit, "limit_price": self.limit_price,
                "last_limit": self.last_limit, "limit_deviation": self.limit_deviation,
                "bid": self.bid, "ask": self.ask, "spread_pct": self.spread_pct,
                "order_id": self.order_id, "perm_id": self.perm_id, "filled": self.filled,
                "avg_fill_price": self.avg_fill_price, "commission": self.commission,
                "reprices": self.reprices, "warnings": self.warnings}


# --- monitoring ----------------------------------------------------------------------

Severity = Literal["INFO", "WARNING", "CRITICAL", "EMERGENCY"]
AlertKind = Literal["delta", "underlying_drop"]
SEVERITY_ORDER = {"INFO": 0, "WARNING": 1, "CRITICAL": 2, "EMERGENCY": 3}


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    severity: Severity
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, "message": self.message}


@dataclass(frozen=True)
class CampaignLeg:
    """One put of a rolled position's campaign: sold at `premium`, bought back at
    `buyback` (None: the open leg)."""

    strike: float
    expiration: date
    contracts: int
    premium: float
    buyback: float | None
    realized_pnl: float | None
    commission: float

    def as_dict(self) -> dict[str, Any]:
        return {"strike": self.strike, "expiration": self.expiration.isoformat(),
                "contracts": self.contracts, "premium": self.premium,
                "buyback": self.buyback, "realized_pnl": self.realized_pnl,
                "commission": self.commission}


@dataclass(frozen=True)
class Campaign:
    """A rolled position from its first sale: every leg, what the closed ones realised
    (after commissions) and, with the open leg's P&L, the campaign's P&L."""

    legs: tuple[CampaignLeg, ...]

    @property
    def original_premium(self) -> float:
        return self.legs[0].premium

    @property
    def realized(self) -> float:
        return sum(leg.realized_pnl or 0.0 for leg in self.legs if leg.buyback is not None)

    @property
    def commissions(self) -> float:
        return sum(leg.commission for leg in self.legs)

    def pnl(self, open_leg_pnl: float | None) -> float | None:
        return None if open_leg_pnl is None else self.realized + open_leg_pnl

    def as_dict(self, open_leg_pnl: float | None) -> dict[str, Any]:
        return {"legs": [leg.as_dict() for leg in self.legs],
                "original_premium": self.original_premium, "realized": self.realized,
                "commissions": self.commissions, "pnl": self.pnl(open_leg_pnl)}


@dataclass(frozen=True)
class PositionView:
    """One short put as the monitor sees it. Any market figure may be None (the broker
    did not say); P&L is against the entry premium, per the whole position."""

    position_id: str
    contract: OptionContract
    quantity: int  # contracts, negative for a short
    entry_price: float  # premium per share received
    trade_id: str | None
    entry_date: date | None
    entry_underlying: float | None
    roll_count: int
    dte: int
    bid: float | None
    ask: float | None
    mark: float | None
    delta: float | None
    iv: float | None
    underlying_price: float | None
    alerts: tuple[Alert, ...] = ()
    #: "CLOSING at $x" while a close works, "EXIT STUCK: reason" when the last one
    #: could not buy it all back; "" otherwise.
    exit_state: str = ""
    campaign: Campaign | None = None  # rolled positions: the legs since the first sale
    theta: float | None = None  # per option share per calendar day (the broker's)
    #: "mid" (bid/ask midpoint) or "last" (last trade, no usable quote): what `mark` is.
    mark_source: str = ""
    #: The broker's maintenance margin for this position: what a what-if of closing it
    #: says would be released (None when the broker did not say; `margin_note` says why).
    margin: float | None = None
    margin_note: str = ""

    @property
    def symbol(self) -> str:
        return self.contract.symbol

    @property
    def campaign_pnl(self) -> float | None:
        return self.campaign.pnl(self.pnl) if self.campaign is not None else self.pnl

    @property
    def contracts(self) -> int:
        return abs(self.quantity)

    @property
    def pnl(self) -> float | None:
        if self.mark is None:
            return None
        return (self.entry_price - self.mark) * 100 * self.contracts

    @property
    def loss_multiple(self) -> float | None:
        """Loss as a multiple of the premium received (2.0 = lost twice the premium)."""
        if self.mark is None or self.entry_price <= 0:
            return None
        return (self.mark - self.entry_price) / self.entry_price

    @property
    def captured(self) -> float | None:
        """Share of the premium captured (0.5 = half of it is ours)."""
        loss = self.loss_multiple
        return None if loss is None else -loss

    @property
    def entry_per_contract(self) -> float:
        """Premium received per contract (100 shares)."""
        return self.entry_price * 100

    @property
    def otm_pct(self) -> float | None:
        """How far the strike is below the underlying, as a fraction of the underlying
        (negative: the put is in the money)."""
        if self.underlying_price is None or self.underlying_price <= 0:
            return None
        return (self.underlying_price - self.contract.strike) / self.underlying_price

    @property
    def theta_per_day(self) -> float | None:
        """The position's theta in dollars per calendar day (positive: a short put earns it)."""
        if self.theta is None:
            return None
        return self.theta * 100 * self.quantity

    @property
    def drop_pct(self) -> float | None:
        if self.entry_underlying is None or self.underlying_price is None \
                or self.entry_underlying <= 0:
            return None
        return (self.entry_underlying - self.underlying_price) / self.entry_underlying

    @property
    def worst(self) -> Severity | None:
        if not self.alerts:
            return None
        return max((a.severity for a in self.alerts), key=SEVERITY_ORDER.__getitem__)

    def as_dict(self) -> dict[str, Any]:
        return {"position_id": self.position_id, "symbol": self.symbol,
                "strike": self.contract.strike,
                "expiration": self.contract.expiration.isoformat(),
                "quantity": self.quantity, "entry_price": self.entry_price,
                "trade_id": self.trade_id,
                "entry_date": self.entry_date.isoformat() if self.entry_date else None,
                "entry_underlying": self.entry_underlying, "roll_count": self.roll_count,
                "dte": self.dte, "bid": self.bid, "ask": self.ask, "mark": self.mark,
                "mark_source": self.mark_source, "delta": self.delta, "theta": self.theta,
                "theta_per_day": self.theta_per_day, "iv": self.iv,
                "underlying_price": self.underlying_price, "otm_pct": self.otm_pct,
                "entry_per_contract": self.entry_per_contract, "margin": self.margin,
                "margin_note": self.margin_note,
                "drop_pct": self.drop_pct, "pnl": self.pnl,
                "loss_multiple": self.loss_multiple,
                "alerts": [a.as_dict() for a in self.alerts],
                "exit_state": self.exit_state, "campaign_pnl": self.campaign_pnl,
                "campaign": (self.campaign.as_dict(self.pnl) if self.campaign is not None
                             else None)}
