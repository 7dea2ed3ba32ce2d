"""Screening filters (spec 1.2A-C), applied identically to CSV and API candidates.

Order: DTE, OTM%, raw IV, delta, bid, volume, open interest. The first failing rule
rejects with a readable reason (logged as one line per rule, each row at DEBUG). A value
the source did not provide is not a failure: the rule is skipped and the candidate
carries a warning saying so. `check_columns` is the same rules over numpy columns (the
CSV screener's path); the reasons come from the same functions.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from core.config import ScreenerSettings
from core.models import Candidate, Rejection

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


def _dte_high(dte: int, s: ScreenerSettings) -> str:
    return f"DTE {dte} above maximum {s.dte_max}"


@functools.lru_cache(maxsize=64)
def _pct_range(low: float, high: float) -> str:
    return f"{_pct(low)}-{_pct(high)}%"


def _otm(otm: float, s: ScreenerSettings) -> str:
    return f"OTM% {otm * 100:.1f}% outside range {_pct_range(s.otm_pct_min, s.otm_pct_max)}"


def _iv(iv: float, s: ScreenerSettings) -> str:
    return f"Raw IV {iv * 100:.1f}% outside range {_pct_range(s.raw_iv_min, s.raw_iv_max)}"


def _delta(delta: float, s: ScreenerSettings) -> str:
    return f"Delta {delta:.2f} outside range {s.delta_min:g}-{s.delta_max:g}"


def _bid(bid: float, s: ScreenerSettings) -> str:
    return f"Bid ${bid:.2f} below minimum ${s.min_bid:.2f}"


def _volume(volume: int, s: ScreenerSettings) -> str:
    return f"Volume {volume} below minimum {s.min_volume}"


def _open_interest(oi: int, s: ScreenerSettings) -> str:
    return f"Open interest {oi} below minimum {s.min_open_interest}"


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


def check_columns(cols: dict[str, np.ndarray], s: ScreenerSettings
                  ) -> tuple[list[str | None], list[tuple[str, ...]], dict[str, int]]:
    """`check` over columns (one entry per candidate, in order): dte, otm, iv/iv_p,
    delta (absolute)/delta_p, bid (NaN: none), vol/vol_p, oi/oi_p (whole numbers).
    Returns each candidate's reason (None: passed), its warnings, and the count per rule."""
    n = len(cols["dte"])
    reasons: list[str | None] = [None] * n
    pending = np.ones(n, dtype=bool)
    dte, otm = cols["dte"], cols["otm"]
    iv, iv_p, delta, delta_p = cols["iv"], cols["iv_p"], cols["delta"], cols["delta_p"]
    bid, vol, vol_p, oi, oi_p = cols["bid"], cols["vol"], cols["vol_p"], cols["oi"], cols["oi_p"]
    with np.errstate(invalid="ignore"):
        rules: list[tuple[str, np.ndarray, np.ndarray, Callable[[Any, ScreenerSettings], str],
                          type]] = [
            ("DTE", dte < s.dte_min, dte, _dte_low, int),
            ("DTE", dte > s.dte_max, dte, _dte_high, int),
            ("OTM%", ~((s.otm_pct_min <= otm) & (otm <= s.otm_pct_max)), otm, _otm, float),
            ("Raw IV", iv_p & ~((s.raw_iv_min <= iv) & (iv <= s.raw_iv_max)), iv, _iv, float),
            ("Delta", delta_p & ~((s.delta_min <= delta) & (delta <= s.delta_max)), delta,
             _delta, float),
            ("Bid", ~np.isnan(bid) & (bid < s.min_bid), bid, _bid, float),
            ("Volume", vol_p & (vol < s.min_volume), vol, _volume, int),
            ("Open interest", oi_p & (oi < s.min_open_interest), oi, _open_interest, int),
        ]
    counts: dict[str, int] = {}
    for name, mask, values, reason, kind in rules:
        hit = np.flatnonzero(pending & mask)
        pending[hit] = False
        counts[name] = counts.get(name, 0) + len(hit)
        for i, v in zip(hit.tolist(), values[hit].astype(kind).tolist(), strict=True):
            reasons[i] = reason(v, s)
    kinds = [(~iv_p, NO_RAW_IV), (~delta_p, NO_DELTA),
             (~vol_p if s.min_volume > 0 else np.zeros(n, dtype=bool), NO_VOLUME),
             (~oi_p if s.min_open_interest > 0 else np.zeros(n, dtype=bool),
              NO_OPEN_INTEREST)]
    warned = np.stack([m & pending for m, _w in kinds]) if n else np.zeros((4, 0), bool)
    warnings: list[tuple[str, ...]] = [()] * n
    for i in np.flatnonzero(warned.any(axis=0)).tolist():
        warnings[i] = tuple(w for j, (_m, w) in enumerate(kinds) if warned[j, i])
    return reasons, warnings, counts


def log_filtered(rejected: list[Rejection]) -> None:
    """One INFO line per rule with its count (a 5,000-row export rejects thousands),
    each row at DEBUG."""
    counts: dict[str, int] = {}
    for r in rejected:
        rule = _RULE.match(r.reason)
        key = rule.group(0) if rule else r.reason
        counts[key] = counts.get(key, 0) + 1
    log_rule_counts(counts, rejected)


def log_rule_counts(counts: dict[str, int], rejected: list[Rejection]) -> None:
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
