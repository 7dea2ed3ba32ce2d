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
from collections.abc import Iterable, Sequence

import numpy as np

from core.broker.base import Position
from core.config import RiskSettings, ValidationSettings
from core.market.pricing import BROAD_INDEX_ETFS, prob_above
from core.market.sectors import get_sector
from core.models import Candidate

WEIGHTS = {"return": 0.35, "iv_rank": 0.20, "prob_otm": 0.20, "liquidity": 0.15,
           "earnings": 0.10}


def annualised_return_on_margin(c: Candidate) -> float | None:
    return score_all([c], [], None, None)[0].annualised_return


def score(c: Candidate, held: Iterable[Position], risk: RiskSettings,
          validation: ValidationSettings, rate: float = 0.0) -> Candidate:
    return score_all([c], held, risk, validation, rate)[0]


def score_all(candidates: Sequence[Candidate], held: Iterable[Position],
              risk: RiskSettings | None, validation: ValidationSettings | None,
              rate: float = 0.0) -> list[Candidate]:
    """Each candidate with its figures and score (`risk`/`validation` None: figures only).

    One pass for a whole scan: the book's counts are taken once, the arithmetic runs as
    numpy columns (the same IEEE operations, in the same order, as on one candidate) and
    each candidate is copied once. What stays per candidate is what must read exactly as
    before: Python's round() and sum(), N(d2) and the penalty's counts."""
    n = len(candidates)
    if n == 0:
        return []
    cs = candidates
    premium = [c.live_bid if c.live_bid is not None else c.bid for c in cs]
    u = np.array([c.underlying_price for c in cs], dtype=np.float64)
    k = np.array([c.strike for c in cs], dtype=np.float64)
    dte = np.array([c.dte for c in cs], dtype=np.int64)
    priced = np.array([p is not None and p > 0 for p in premium], dtype=bool)
    p = np.array([p if ok else 0.0 for p, ok in zip(premium, priced.tolist(), strict=True)],
                 dtype=np.float64)
    # ibkr_short_option_margin for a put, per share then x 100; 15% for broad index ETFs.
    pct = np.array([0.15 if c.symbol.upper() in BROAD_INDEX_ETFS else 0.20 for c in cs])
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = (p + np.maximum(np.maximum(pct * u - np.maximum(u - k, 0.0), 0.10 * k),
                                 2.50)) * 100.0
        rom = p * 100 / margin
        ann = rom * 365 / dte
    margins, roms, anns = round_all(margin, 2), rom.tolist(), ann.tolist()
    priced_list, dte_list = priced.tolist(), dte.tolist()
    # The figures that change, per candidate (most have no IV before validation).
    figures: list[dict[str, object]] = [
        {"margin_per_contract": m, "return_on_margin": r,
         "annualised_return": a if d > 0 else None} if ok else {}
        for m, r, a, d, ok in zip(margins, roms, anns, dte_list, priced_list, strict=True)]
    for i, c in enumerate(cs):
        sigma = c.option_iv or c.raw_iv or c.current_iv or None
        if sigma is not None and dte_list[i] > 0:
            years = dte_list[i] / 365
            figures[i].update(prob_otm=prob_above(c.underlying_price, c.strike, years, sigma,
                                                  rate),
                              prob_otm_inputs={"iv": sigma, "rate": rate, "years": years})
    if risk is None or validation is None:
        return [c.but(**f) if f else c for c, f in zip(cs, figures, strict=True)]

    def column(values: list[float | None], fallback: float) -> np.ndarray:
        return np.array([fallback if v is None else v for v in values], dtype=np.float64)

    ann_col = column([f.get("annualised_return", c.annualised_return)  # type: ignore[misc]
                      for c, f in zip(cs, figures, strict=True)], np.nan)
    part_return = np.where(np.isnan(ann_col), 0.0, np.minimum(ann_col / 0.60, 1.0))
    part_iv_rank = column([c.iv_rank for c in cs], 0.5)
    prob = [f.get("prob_otm", c.prob_otm) for c, f in zip(cs, figures, strict=True)]
    delta = column([c.delta for c in cs], np.nan)
    part_prob = np.where(np.isnan(delta), 0.5, np.maximum(0.0, 1.0 - np.abs(delta)))
    known_prob = np.array([v is not None for v in prob], dtype=bool)
    part_prob = np.where(known_prob, column(prob, 0.0), part_prob)  # type: ignore[arg-type]
    spread = column([c.spread_pct for c in cs], np.nan)
    spread_part = np.where(np.isnan(spread), 0.5,
                           np.maximum(0.0, 1.0 - spread / validation.max_spread_pct))
    oi = column([c.open_interest for c in cs], np.nan)
    oi_part = np.where(np.isnan(oi), 0.5, np.minimum(oi / 1000, 1.0))
    part_liquidity = (spread_part + oi_part) / 2
    part_earnings = np.array([
        0.5 if c.earnings_known is False else 1.0 if c.earnings_date is None
        else min(max((c.earnings_date - c.expiration).days, 0) / 30, 1.0) for c in cs])
    parts = [part_return, part_iv_rank, part_prob, part_liquidity, part_earnings]
    # Python's sum(), left to right from 0 as before (3.12 compensates: it stays sum()).
    base = [sum(w) for w in zip(*[(WEIGHTS[name] * part).tolist()
                                  for name, part in zip(WEIGHTS, parts, strict=True)],
                                 strict=True)]

    options = [p for p in held if p.sec_type == "OPT" and p.contract is not None]
    sector = [c.sector or get_sector(c.symbol) for c in cs]
    same_symbol = np.zeros(n, dtype=np.int64)
    penalty: np.ndarray = np.zeros(n)
    notes: dict[int, list[str]] = {}
    if options:
        by_symbol = Counter(p.symbol for p in options)
        same_symbol = np.array([by_symbol[c.symbol] for c in cs], dtype=np.int64)
        penalty = 0.15 * same_symbol
    full = same_symbol >= risk.max_positions_per_symbol
    penalty = np.where(full, 1.0, penalty)
    for i in np.flatnonzero(full).tolist():
        notes.setdefault(i, []).append(f"already {same_symbol[i]} positions on {cs[i].symbol} "
                                       f"(max {risk.max_positions_per_symbol})")
    if options:
        sectors = Counter(get_sector(p.symbol) for p in options)
        expiries = Counter(p.contract.expiration for p in options if p.contract)
        penalty = penalty + 0.5 * np.array([sectors[s] for s in sector]) / len(options)
        crowded = np.array([expiries[c.expiration] / len(options) > 0.5 for c in cs])
        penalty = np.where(crowded, penalty + 0.2, penalty)
        for i in np.flatnonzero(crowded).tolist():
            notes.setdefault(i, []).append(
                f"over half the book already expires {cs[i].expiration}")
    penalty = np.minimum(penalty, 1.0)
    scores = round_all(np.array(base) * (1 - penalty), 4)
    # One dict per candidate: its fields, its figures, its score (Candidate.from_fields
    # takes it as is; the keys are the dataclass's, as the tests check against `but`).
    out = [Candidate.from_fields({
        **c.__dict__, **f, "score": sc, "sector": sec, "score_parts": {
            "return": r0, "iv_rank": r1, "prob_otm": r2, "liquidity": r3, "earnings": r4,
            "penalty": r5}})
        for c, f, sc, sec, r0, r1, r2, r3, r4, r5 in zip(
            cs, figures, scores, sector, *[round_all(part, 4) for part in [*parts, penalty]],
            strict=True)]
    for i, more in notes.items():
        out[i] = out[i].but(warnings=(*out[i].warnings, *more))
    return out


def round_all(values: np.ndarray, digits: int) -> list[float]:
    """[round(v, digits) for v in values], ~5x faster: numpy's rint(v x 10^d) / 10^d is
    the same double wherever v x 10^d is not within a hair of a half (there Python's
    correctly rounded decimal and numpy's product can part by one unit), and Python's
    round() takes those and anything huge or not finite."""
    scale = 10.0 ** digits
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = values * scale
        out = (np.rint(scaled) / scale).tolist()
        near_half = np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) < 1e-6
        odd = near_half | ~(np.abs(scaled) < 1e9)
    for i in np.flatnonzero(odd).tolist():
        out[i] = round(float(values[i]), digits)
    return out  # type: ignore[no-any-return]
