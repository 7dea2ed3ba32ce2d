"""Domain types shared across the engine: candidates from screening and the reasons
they were turned away."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
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
    score: float | None = None
    score_parts: dict[str, float] = field(default_factory=dict)
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

    def but(self, **changes: Any) -> Candidate:
        return replace(self, **changes)

    def with_warning(self, text: str) -> Candidate:
        return replace(self, warnings=(*self.warnings, text))


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
