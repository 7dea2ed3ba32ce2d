"""Screening filters (spec 1.2A-C), applied identically to CSV and API candidates, and
the entry bounds every trade meets wherever it comes from (spec 1.3 point 2: the
governor catches a bypass): one definition of each rule.

Screening order: DTE, OTM%, raw IV, delta, bid, volume, open interest. The first failing rule
rejects with a readable reason (logged as one line per rule, each row at DEBUG). A value
the source did not provide is not a failure: the rule is skipped and the candidate
carries a warning saying so. `check_columns` is the same rules over numpy columns (the
CSV screener's path); the reasons come from the same functions.

Entry bounds (`entry_bounds`): DTE, OTM%, delta, IV rank and spread, each a named check
with the figures it saw. The governor runs them for the CLI check, the console,
candidates and roll targets; the screener and the IBKR validator use the same rules.
Figures print with enough precision that a breached bound never reads as equal to it.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from core.config import ScreenerSettings, ValidationSettings
from core.models import Candidate, CheckResult, Rejection
from core.risk.figures import pct_vs, vs

log = logging.getLogger("putdesk.screening.filters")
#: The rule a reason names: its words before the first figure ('DTE', 'OTM%', 'Raw IV'...).
_RULE = re.compile(r"^[A-Za-z% ]+?(?= [-$0-9])")


def _pct(x: float) -> str:
    return f"{x * 100:g}"


#: Warnings for a rule skipped for missing data, in rule order.
NO_RAW_IV = "raw IV not in the source: raw-IV filter not applied"
NO_DELTA = "delta not in the source: delta filter not applied"
NO_VOLUME = "volume not in the source: volume filter not applied"
NO_OPEN_INTEREST = "open interest not in the source: open-interest filter not applied"


# The reasons, one definition for the row check and the column check.
def _dte_low(dte: int, s: ScreenerSettings) -> str:
    return f"DTE {dte} below minimum {s.dte_min}"


def _dte_high(dte: int, s: ScreenerSettings, top: int | None = None) -> str:
    return f"DTE {dte} above maximum {s.dte_max if top is None else top}"


@functools.lru_cache(maxsize=64)
def _pct_range(low: float, high: float) -> str:
    return f"{_pct(low)}-{_pct(high)}%"


def _otm(otm: float, s: ScreenerSettings) -> str:
    limit = s.otm_pct_min if otm < s.otm_pct_min else s.otm_pct_max
    return (f"OTM% {pct_vs(otm, limit)} outside range "
            f"{_pct_range(s.otm_pct_min, s.otm_pct_max)}")


def _iv(iv: float, s: ScreenerSettings) -> str:
    return f"Raw IV {iv * 100:.1f}% outside range {_pct_range(s.raw_iv_min, s.raw_iv_max)}"


def _delta(delta: float, s: ScreenerSettings) -> str:
    limit = s.delta_min if delta < s.delta_min else s.delta_max
    return f"Delta {vs(delta, limit, 2)} outside range {s.delta_min:g}-{s.delta_max:g}"


def _bid(bid: float, s: ScreenerSettings) -> str:
    return f"Bid ${bid:.2f} below minimum ${s.min_bid:.2f}"


def _volume(volume: int, s: ScreenerSettings) -> str:
    return f"Volume {volume} below minimum {s.min_volume}"


def _open_interest(oi: int, s: ScreenerSettings) -> str:
    return f"Open interest {oi} below minimum {s.min_open_interest}"


# --- the entry bounds: one rule each, the reason a value breaks it or None -------------

def dte_problem(dte: int, s: ScreenerSettings, dte_max: int | None = None) -> str | None:
    top = s.dte_max if dte_max is None else dte_max
    if dte < s.dte_min:
        return _dte_low(dte, s)
    if dte > top:
        return _dte_high(dte, s, top)
    return None


def otm_problem(otm_pct: float, s: ScreenerSettings) -> str | None:
    return None if s.otm_pct_min <= otm_pct <= s.otm_pct_max else _otm(otm_pct, s)


def delta_problem(delta: float, s: ScreenerSettings) -> str | None:
    d = abs(delta)
    return None if s.delta_min <= d <= s.delta_max else _delta(d, s)


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
                               f"OTM% {otm_pct:.1%} within "
                               f"{_pct_range(s.otm_pct_min, s.otm_pct_max)}", figures))
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
    if c.dte < s.dte_min:
        return _dte_low(c.dte, s), warnings
    if c.dte > s.dte_max:
        return _dte_high(c.dte, s), warnings
    if not s.otm_pct_min <= c.otm_pct <= s.otm_pct_max:
        return _otm(c.otm_pct, s), warnings
    if c.raw_iv is None:
        warnings.append(NO_RAW_IV)
    elif not s.raw_iv_min <= c.raw_iv <= s.raw_iv_max:
        return _iv(c.raw_iv, s), warnings
    if c.delta is None:
        warnings.append(NO_DELTA)
    elif not s.delta_min <= abs(c.delta) <= s.delta_max:
        return _delta(abs(c.delta), s), warnings
    if c.bid is not None and c.bid < s.min_bid:
        return _bid(c.bid, s), warnings
    if c.volume is None:
        if s.min_volume > 0:
            warnings.append(NO_VOLUME)
    elif c.volume < s.min_volume:
        return _volume(c.volume, s), warnings
    if c.open_interest is None:
        if s.min_open_interest > 0:
            warnings.append(NO_OPEN_INTEREST)
    elif c.open_interest < s.min_open_interest:
        return _open_interest(c.open_interest, s), warnings
    return None, warnings


#: The column rules in screening order: the name logged, the reason, the value's type.
_COLUMN_RULES: list[tuple[str, Callable[[Any, ScreenerSettings], str], type]] = [
    ("DTE", _dte_low, int), ("DTE", _dte_high, int), ("OTM%", _otm, float),
    ("Raw IV", _iv, float), ("Delta", _delta, float), ("Bid", _bid, float),
    ("Volume", _volume, int), ("Open interest", _open_interest, int)]


def check_columns(cols: dict[str, np.ndarray], s: ScreenerSettings
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """`check` over columns (one entry per candidate, in order): dte, otm, iv/iv_p,
    delta (absolute)/delta_p, bid (NaN: none), vol/vol_p, oi/oi_p (whole numbers).
    Returns each candidate's first failing rule (-1: passed; `column_reason` words it),
    the value that rule saw, and the count per rule name. The reasons are not written
    here: a 5,000-row export rejects thousands, and they are read only when shown."""
    n = len(cols["dte"])
    dte, otm = cols["dte"], cols["otm"]
    iv, iv_p, delta, delta_p = cols["iv"], cols["iv_p"], cols["delta"], cols["delta_p"]
    bid, vol, vol_p, oi, oi_p = cols["bid"], cols["vol"], cols["vol_p"], cols["oi"], cols["oi_p"]
    with np.errstate(invalid="ignore"):
        checks = [
            (dte < s.dte_min, dte), (dte > s.dte_max, dte),
            (~((s.otm_pct_min <= otm) & (otm <= s.otm_pct_max)), otm),
            (iv_p & ~((s.raw_iv_min <= iv) & (iv <= s.raw_iv_max)), iv),
            (delta_p & ~((s.delta_min <= delta) & (delta <= s.delta_max)), delta),
            (~np.isnan(bid) & (bid < s.min_bid), bid),
            (vol_p & (vol < s.min_volume), vol),
            (oi_p & (oi < s.min_open_interest), oi),
        ]
    rule = np.full(n, -1, dtype=np.int8)
    seen = np.zeros(n)
    counts: dict[str, int] = {}
    for i, (mask, values) in enumerate(checks):
        hit = mask & (rule < 0)
        rule[hit] = i
        seen[hit] = values[hit]
        name = _COLUMN_RULES[i][0]
        counts[name] = counts.get(name, 0) + int(hit.sum())
    return rule, seen, counts


def column_reason(rule: int, value: float, s: ScreenerSettings) -> str:
    """The reason `check` gives for a candidate that `check_columns` found breaking `rule`
    with `value`."""
    _name, reason, kind = _COLUMN_RULES[rule]
    return reason(kind(value), s)


def column_notes(cols: dict[str, np.ndarray], passed: np.ndarray, s: ScreenerSettings
                 ) -> list[str]:
    """`apply_filters`'s notes for the candidates that passed `check_columns`: a rule
    skipped for missing data, with its count, in the order `check` first met each."""
    kinds = [(~cols["iv_p"], NO_RAW_IV), (~cols["delta_p"], NO_DELTA),
             (~cols["vol_p"] if s.min_volume > 0 else None, NO_VOLUME),
             (~cols["oi_p"] if s.min_open_interest > 0 else None, NO_OPEN_INTEREST)]
    found: list[tuple[int, int, str, int]] = []
    for order, (mask, text) in enumerate(kinds):
        if mask is None:
            continue
        hit = np.flatnonzero(mask & passed)
        if len(hit):
            found.append((int(hit[0]), order, text, len(hit)))
    return notes_for({text: count for _first, _order, text, count in sorted(found)})


def log_filtered(rejected: list[Rejection]) -> None:
    """One INFO line per rule with its count (a 5,000-row export rejects thousands),
    each row at DEBUG."""
    counts: dict[str, int] = {}
    for r in rejected:
        rule = _RULE.match(r.reason)
        key = rule.group(0) if rule else r.reason
        counts[key] = counts.get(key, 0) + 1
    log_rule_counts(counts, rejected)


def log_rule_counts(counts: dict[str, int], rejected: Iterable[Rejection]) -> None:
    if log.isEnabledFor(logging.DEBUG):
        for r in rejected:
            log.debug("Filtered %s %s %g P: %s", r.symbol, r.expiration, r.strike, r.reason)
    for rule_name, count in counts.items():
        if count:
            log.info("Filtered %d candidate%s: %s", count, "s" if count != 1 else "",
                     rule_name)


def notes_for(skipped: dict[str, int]) -> list[str]:
    notes = [f"{w} ({n} candidate{'s' if n != 1 else ''})" for w, n in skipped.items()]
    for note in notes:
        log.info("Screening: %s", note)
    return notes


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
            rejected.append(Rejection.of(c, "filter", reason))
            continue
        for w in warnings:
            skipped[w] = skipped.get(w, 0) + 1
        passed.append(c)
    log_filtered(rejected)
    return passed, rejected, notes_for(skipped)
