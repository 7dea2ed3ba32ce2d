"""Candidate scores: a documented weighted sum, then a diversification penalty.

Components, each 0..1 (shown on screen with their weights):
- return  (0.35): annualised premium on IBKR Reg T margin, premium / margin x 365 / DTE;
                  60 % a year or more scores 1.
- iv_rank (0.20): IV rank from validation (unknown: 0.5).
- prob_otm(0.20): 1 - |delta| (unknown delta: 0.5).
- liquidity(0.15): half spread tightness (1 - spread / IBKR_MAX_SPREAD_PCT), half open
                  interest (1,000 contracts or more scores 1; unknown: 0.5).
- earnings(0.10): days from expiration to the next report, 30 or more scores 1; no report
                  expected (a fund) 1; unknown 0.5.
Penalty (spec 1.4; informational here, the risk governor enforces the limits):
- 0.15 per position already open on the symbol; at MAX_POSITIONS_PER_SYMBOL the score
  is 0;
- half the share of open positions already in the candidate's sector;
- 0.2 when more than half of the open positions share the candidate's expiration.
score = weighted sum x (1 - min(penalty, 1)).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from core.broker.base import Position
from core.config import RiskSettings, ValidationSettings
from core.market.pricing import ibkr_short_option_margin, is_broad_index
from core.market.sectors import get_sector
from core.models import Candidate

WEIGHTS = {"return": 0.35, "iv_rank": 0.20, "prob_otm": 0.20, "liquidity": 0.15,
           "earnings": 0.10}


def annualised_return_on_margin(c: Candidate) -> float | None:
    premium = c.premium
    if premium is None or premium <= 0 or c.dte <= 0:
        return None
    margin = float(ibkr_short_option_margin(c.underlying_price, c.strike, premium,
                                            broad_index=is_broad_index(c.symbol))) / 100
    return premium / margin * 365 / c.dte


def score(c: Candidate, held: Iterable[Position], risk: RiskSettings,
          validation: ValidationSettings) -> Candidate:
    parts: dict[str, float] = {}
    rom = annualised_return_on_margin(c)
    parts["return"] = 0.0 if rom is None else min(rom / 0.60, 1.0)
    parts["iv_rank"] = 0.5 if c.iv_rank is None else c.iv_rank
    parts["prob_otm"] = 0.5 if c.delta is None else max(0.0, 1.0 - abs(c.delta))
    spread_part = (0.5 if c.spread_pct is None
                   else max(0.0, 1.0 - c.spread_pct / validation.max_spread_pct))
    oi_part = 0.5 if c.open_interest is None else min(c.open_interest / 1000, 1.0)
    parts["liquidity"] = (spread_part + oi_part) / 2
    if c.earnings_known is False:
        parts["earnings"] = 0.5
    elif c.earnings_date is None:
        parts["earnings"] = 1.0
    else:
        parts["earnings"] = min(max((c.earnings_date - c.expiration).days, 0) / 30, 1.0)
    base = sum(WEIGHTS[k] * v for k, v in parts.items())

    options = [p for p in held if p.sec_type == "OPT" and p.contract is not None]
    sector = c.sector or get_sector(c.symbol)
    same_symbol = sum(1 for p in options if p.symbol == c.symbol)
    penalty = 0.15 * same_symbol
    notes = []
    if same_symbol >= risk.max_positions_per_symbol:
        penalty = 1.0
        notes.append(f"already {same_symbol} positions on {c.symbol} "
                     f"(max {risk.max_positions_per_symbol})")
    if options:
        sectors = Counter(get_sector(p.symbol) for p in options)
        penalty += 0.5 * sectors[sector] / len(options)
        expiries = Counter(p.contract.expiration for p in options if p.contract)
        if expiries[c.expiration] / len(options) > 0.5:
            penalty += 0.2
            notes.append(f"over half the book already expires {c.expiration}")
    parts["penalty"] = min(penalty, 1.0)
    total = base * (1 - parts["penalty"])
    out = c.but(score=round(total, 4), score_parts={k: round(v, 4) for k, v in parts.items()},
                sector=sector)
    for note in notes:
        out = out.with_warning(note)
    return out
