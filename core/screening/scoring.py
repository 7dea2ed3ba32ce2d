"""Candidate figures and scores.

Figures (what a trader reads, shown beside the score): premium per contract, IBKR Reg T
margin per contract, return on margin (premium / margin), annualised return (x 365 /
DTE), and the probability of expiring out of the money, N(d2) with the option's IV (the
live quote's, else the source's, else the underlying's), the risk-free rate
(PUTDESK_SIM_RISK_FREE_RATE) and DTE / 365 years, no dividend.

Score: a documented weighted sum of parts, each 0..1 (scores, not figures; shown on
screen with their weights), then a diversification penalty:
- return  (0.35): the annualised return on margin; 60 % a year or more scores 1.
- iv_rank (0.20): IV rank from validation (unknown: 0.5).
- prob_otm(0.20): the N(d2) probability above (no IV: 1 - |delta|; neither: 0.5).
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
from core.market.pricing import ibkr_short_option_margin, is_broad_index, prob_above
from core.market.sectors import get_sector
from core.models import Candidate

WEIGHTS = {"return": 0.35, "iv_rank": 0.20, "prob_otm": 0.20, "liquidity": 0.15,
           "earnings": 0.10}


def figures(c: Candidate, rate: float) -> Candidate:
    """The candidate with its margin, return on margin, annualised return and N(d2)."""
    premium = c.premium
    changes: dict[str, object] = {}
    if premium is not None and premium > 0:
        margin = float(ibkr_short_option_margin(c.underlying_price, c.strike, premium,
                                                broad_index=is_broad_index(c.symbol)))
        rom = premium * 100 / margin
        changes.update(margin_per_contract=round(margin, 2), return_on_margin=rom,
                       annualised_return=rom * 365 / c.dte if c.dte > 0 else None)
    sigma = next((v for v in (c.option_iv, c.raw_iv, c.current_iv) if v), None)
    if sigma is not None and c.dte > 0:
        years = c.dte / 365
        changes.update(prob_otm=prob_above(c.underlying_price, c.strike, years, sigma, rate),
                       prob_otm_inputs={"iv": sigma, "rate": rate, "years": years})
    return c.but(**changes) if changes else c


def annualised_return_on_margin(c: Candidate) -> float | None:
    return figures(c, 0.0).annualised_return


def score(c: Candidate, held: Iterable[Position], risk: RiskSettings,
          validation: ValidationSettings, rate: float = 0.0) -> Candidate:
    c = figures(c, rate)
    parts: dict[str, float] = {}
    ann = c.annualised_return
    parts["return"] = 0.0 if ann is None else min(ann / 0.60, 1.0)
    parts["iv_rank"] = 0.5 if c.iv_rank is None else c.iv_rank
    parts["prob_otm"] = (c.prob_otm if c.prob_otm is not None
                         else 0.5 if c.delta is None else max(0.0, 1.0 - abs(c.delta)))
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
