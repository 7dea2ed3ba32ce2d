"""Screening filters (spec 1.2A-C), applied identically to CSV and API candidates.

Order: DTE, OTM%, raw IV, delta, bid, volume, open interest. The first failing rule
rejects with a readable reason (logged). A value the source did not provide is not a
failure: the rule is skipped and the candidate carries a warning saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from core.config import ScreenerSettings
from core.models import Candidate, Rejection

log = logging.getLogger("putdesk.screening.filters")


def _pct(x: float) -> str:
    return f"{x * 100:g}"


def check(c: Candidate, s: ScreenerSettings) -> tuple[str | None, list[str]]:
    """(reason it is rejected or None, warnings)."""
    warnings: list[str] = []
    if c.dte < s.dte_min:
        return f"DTE {c.dte} below minimum {s.dte_min}", warnings
    if c.dte > s.dte_max:
        return f"DTE {c.dte} above maximum {s.dte_max}", warnings
    if not s.otm_pct_min <= c.otm_pct <= s.otm_pct_max:
        return (f"OTM% {c.otm_pct * 100:.1f}% outside range "
                f"{_pct(s.otm_pct_min)}-{_pct(s.otm_pct_max)}%"), warnings
    if c.raw_iv is None:
        warnings.append("raw IV not in the source: raw-IV filter not applied")
    elif not s.raw_iv_min <= c.raw_iv <= s.raw_iv_max:
        return (f"Raw IV {c.raw_iv * 100:.1f}% outside range "
                f"{_pct(s.raw_iv_min)}-{_pct(s.raw_iv_max)}%"), warnings
    if c.delta is None:
        warnings.append("delta not in the source: delta filter not applied")
    elif not s.delta_min <= abs(c.delta) <= s.delta_max:
        return (f"Delta {abs(c.delta):.2f} outside range {s.delta_min:g}-{s.delta_max:g}"
                ), warnings
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
