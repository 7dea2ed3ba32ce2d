"""Screening filters (spec 1.2A-C), applied identically to CSV and API candidates, and
the entry bounds every trade meets wherever it comes from (spec 1.3 point 2: the
governor catches a bypass): one definition of each rule.

Screening order: DTE, OTM%, raw IV, delta, bid, volume, open interest. The first failing
rule rejects with a readable reason (logged). A value the source did not provide is not
a failure: the rule is skipped and the candidate carries a warning saying so.

Entry bounds (`entry_bounds`): DTE, OTM%, delta, IV rank and spread, each a named check
with the figures it saw. The governor runs them for the CLI check, the console,
candidates and roll targets; the screener and the IBKR validator use the same rules.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from core.config import ScreenerSettings, ValidationSettings
from core.models import Candidate, CheckResult, Rejection
from core.risk.figures import pct_vs, vs

log = logging.getLogger("putdesk.screening.filters")


def _pct(x: float) -> str:
    return f"{x * 100:g}"


# --- one rule each: the reason a value breaks it, or None -----------------------------

def dte_problem(dte: int, s: ScreenerSettings, dte_max: int | None = None) -> str | None:
    top = s.dte_max if dte_max is None else dte_max
    if dte < s.dte_min:
        return f"DTE {dte} below minimum {s.dte_min}"
    if dte > top:
        return f"DTE {dte} above maximum {top}"
    return None


def otm_problem(otm_pct: float, s: ScreenerSettings) -> str | None:
    if s.otm_pct_min <= otm_pct <= s.otm_pct_max:
        return None
    limit = s.otm_pct_min if otm_pct < s.otm_pct_min else s.otm_pct_max
    return (f"OTM% {pct_vs(otm_pct, limit)} outside range "
            f"{_pct(s.otm_pct_min)}-{_pct(s.otm_pct_max)}%")


def delta_problem(delta: float, s: ScreenerSettings) -> str | None:
    d = abs(delta)
    if s.delta_min <= d <= s.delta_max:
        return None
    limit = s.delta_min if d < s.delta_min else s.delta_max
    return f"Delta {vs(d, limit, 2)} outside range {s.delta_min:g}-{s.delta_max:g}"


def iv_rank_problem(rank: float, v: ValidationSettings) -> str | None:
    if rank >= v.iv_rank_min:
        return None
    return f"IV rank {pct_vs(rank, v.iv_rank_min, 0)} below minimum {v.iv_rank_min:.0%}"


def spread_problem(bid: float | None, ask: float | None, v: ValidationSettings
                   ) -> tuple[float | None, str | None]:
    """(spread = (ask - bid) / bid, reason it is refused). No bid (or 0) refuses: nobody
    would pay for the put; no ask (or one under the bid) cannot be measured."""
    top = v.max_spread_pct
    if bid is None or bid <= 0:
        return None, f"No live bid (bid {bid}, ask {ask})"
    if ask is None or ask < bid:
        return None, f"No usable live ask (bid {bid}, ask {ask})"
    spread = (ask - bid) / bid
    if spread > top:
        return spread, (f"Spread {pct_vs(spread, top, 0)} exceeds {top:.0%} max "
                        f"(bid ${bid:.2f}, ask ${ask:.2f})")
    return spread, None


def entry_bounds(*, dte: int, otm_pct: float | None, delta: float | None,
                 iv_rank: float | None, iv_rank_note: str, bid: float | None,
                 ask: float | None, screener: ScreenerSettings,
                 validation: ValidationSettings, dte_max: int | None = None,
                 spread_at_send: bool = False) -> list[CheckResult]:
    """The entry bounds as named checks. An unmeasurable OTM% (no underlying price) or
    spread (no quote) fails: the trade cannot be shown to be inside them. An unknown
    delta or IV rank warns and passes, as screening does with a source that lacks it
    (spec 1.2B: IV-rank data gaps do not block); OTM% still bounds the moneyness."""
    s, v = screener, validation
    top = s.dte_max if dte_max is None else dte_max
    out: list[CheckResult] = []
    problem = dte_problem(dte, s, dte_max)
    out.append(CheckResult("dte", "fail" if problem else "pass",
                           problem or f"DTE {dte} within {s.dte_min}-{top}",
                           {"dte": dte, "min": s.dte_min, "max": top}))
    figures: dict[str, object] = {"otm_pct": otm_pct, "min": s.otm_pct_min,
                                  "max": s.otm_pct_max}
    if otm_pct is None:
        out.append(CheckResult("otm_pct", "fail", "No underlying price: OTM% cannot be "
                               "measured", figures))
    else:
        problem = otm_problem(otm_pct, s)
        out.append(CheckResult("otm_pct", "fail" if problem else "pass", problem or
                               f"OTM% {otm_pct:.1%} within {_pct(s.otm_pct_min)}-"
                               f"{_pct(s.otm_pct_max)}%", figures))
    figures = {"delta": delta, "min": s.delta_min, "max": s.delta_max}
    if delta is None:
        out.append(CheckResult("delta", "warn", "Delta unavailable (no greeks): delta "
                               "bound not applied", figures))
    else:
        problem = delta_problem(delta, s)
        out.append(CheckResult("delta", "fail" if problem else "pass", problem or
                               f"Delta {abs(delta):.2f} within {s.delta_min:g}-"
                               f"{s.delta_max:g}", figures))
    figures = {"iv_rank": iv_rank, "min": v.iv_rank_min}
    if iv_rank is None:
        out.append(CheckResult("iv_rank", "warn", f"IV rank unknown ({iv_rank_note}): "
                               "IV-rank bound not applied", figures))
    else:
        problem = iv_rank_problem(iv_rank, v)
        out.append(CheckResult("iv_rank", "fail" if problem else "pass", problem or
                               f"IV rank {iv_rank:.0%} at or above minimum "
                               f"{v.iv_rank_min:.0%}", figures))
    if spread_at_send:
        out.append(CheckResult("spread", "pass", "Spread measured by the order executor on "
                               "the live quote right before sending (MAX_EXECUTION_SPREAD_PCT)",
                               {"bid": bid, "ask": ask}))
        return out
    spread, problem = spread_problem(bid, ask, v)
    out.append(CheckResult("spread", "fail" if problem else "pass", problem or
                           f"Spread {spread or 0:.0%} within {v.max_spread_pct:.0%} max "
                           f"(bid ${bid or 0:.2f}, ask ${ask or 0:.2f})",
                           {"bid": bid, "ask": ask, "spread_pct": spread,
                            "max": v.max_spread_pct}))
    return out


def check(c: Candidate, s: ScreenerSettings) -> tuple[str | None, list[str]]:
    """(reason it is rejected or None, warnings)."""
    warnings: list[str] = []
    problem = dte_problem(c.dte, s) or otm_problem(c.otm_pct, s)
    if problem is not None:
        return problem, warnings
    if c.raw_iv is None:
        warnings.append("raw IV not in the source: raw-IV filter not applied")
    elif not s.raw_iv_min <= c.raw_iv <= s.raw_iv_max:
        return (f"Raw IV {c.raw_iv * 100:.1f}% outside range "
                f"{_pct(s.raw_iv_min)}-{_pct(s.raw_iv_max)}%"), warnings
    if c.delta is None:
        warnings.append("delta not in the source: delta filter not applied")
    elif (problem := delta_problem(c.delta, s)) is not None:
        return problem, warnings
    if c.bid is not None and c.bid < s.min_bid:
        return f"Bid ${c.bid:.2f} below minimum ${s.min_bid:.2f}", warnings
    if c.volume is None:
        if s.min_volume > 0:
            warnings.append("volume not in the source: volume filter not applied")
    elif c.volume < s.min_volume:
        return f"Volume {c.volume} below minimum {s.min_volume}", warnings
    if c.open_interest is None:
        if s.min_open_interest > 0:
            warnings.append("open interest not in the source: open-interest filter not "
                            "applied")
    elif c.open_interest < s.min_open_interest:
        return (f"Open interest {c.open_interest} below minimum {s.min_open_interest}"
                ), warnings
    return None, warnings


def apply_filters(candidates: Iterable[Candidate], settings: ScreenerSettings
                  ) -> tuple[list[Candidate], list[Rejection], list[str]]:
    """(passed, rejected, notes). A rule skipped for missing data is noted once per rule
    with a count (a CSV view without raw IV would otherwise repeat it on every row)."""
    passed: list[Candidate] = []
    rejected: list[Rejection] = []
    skipped: dict[str, int] = {}
    for c in candidates:
        reason, warnings = check(c, settings)
        if reason is not None:
            log.info("Filtered %s %s %g P: %s", c.symbol, c.expiration, c.strike, reason)
            rejected.append(Rejection.of(c, "filter", reason))
            continue
        for w in warnings:
            skipped[w] = skipped.get(w, 0) + 1
        passed.append(c)
    notes = [f"{w} ({n} candidate{'s' if n != 1 else ''})" for w, n in skipped.items()]
    for note in notes:
        log.info("Screening: %s", note)
    return passed, rejected, notes
