"""Scoring a whole scan at once (`score_all`, issue 19) gives, candidate for candidate and
digit for digit, what scoring them one by one gave before: the code of before is kept
here as the oracle. And the fast copies of a Candidate are the dataclass's own."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest

from core.broker.base import OptionContract, Position
from core.config import RiskSettings, ValidationSettings, load_settings
from core.market.pricing import ibkr_short_option_margin, is_broad_index, prob_above
from core.market.sectors import get_sector
from core.models import Candidate
from core.screening.scoring import (
    WEIGHTS,
    annualised_return_on_margin,
    round_all,
    score,
    score_all,
)

SETTINGS = load_settings({})
TODAY = date(2026, 11, 24)


# --- the scoring of before (commit 5c96354), one candidate at a time: the oracle -------

def _figures(c: Candidate, rate: float) -> Candidate:
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
    return replace(c, **changes) if changes else c


def _score(c: Candidate, held: Iterable[Position], risk: RiskSettings,
           validation: ValidationSettings, rate: float = 0.0) -> Candidate:
    c = _figures(c, rate)
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
    out = replace(c, score=round(total, 4), score_parts={k: round(v, 4) for k, v in parts.items()},
                  sector=sector)
    for note in notes:
        out = replace(out, warnings=(*out.warnings, note))
    return out


# --- generated candidates covering every branch ---------------------------------------

SYMBOLS = ["AAPL", "MSFT", "SPY", "qqq", "XOM", "ZZZZ", "BRK.B"]


def _maybe(rng: random.Random, value: object, p: float = 0.3) -> object:
    return None if rng.random() < p else value


def candidates(n: int, seed: int) -> list[Candidate]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        price = rng.choice([5.0, 23.17, 100.0, 231.4, 1160.0]) * rng.uniform(0.9, 1.1)
        strike = round(price * rng.uniform(0.5, 1.05), 1)
        exp = TODAY + timedelta(days=rng.choice([-1, 0, 1, 7, 24, 45, 60]))
        c = Candidate(
            rng.choice(SYMBOLS), exp, strike, price, (exp - TODAY).days,
            (price - strike) / price, _maybe(rng, rng.choice([0.0, -0.0, 0.05, 1.19, 3.3])),
            ask=_maybe(rng, 1.5), volume=_maybe(rng, rng.randint(0, 500)),
            open_interest=_maybe(rng, rng.choice([0, 1, 999, 1000, 7, 123457])),
            raw_iv=_maybe(rng, rng.choice([0.0, 0.25, 0.9]), 0.5),
            delta=_maybe(rng, rng.choice([-0.0, -0.15, -1.0, -0.33333])), source_row=i + 2)
        if rng.random() < 0.5:  # validated: live quote, IV rank, earnings
            c = c.but(live_bid=_maybe(rng, rng.choice([0.0, 0.4, 2.0])),
                      spread_pct=_maybe(rng, rng.choice([0.0, 0.05, 0.5, 3.0])),
                      iv_rank=_maybe(rng, rng.uniform(0, 1)),
                      option_iv=_maybe(rng, rng.choice([0.0, 0.31])),
                      current_iv=_maybe(rng, 0.2),
                      earnings_known=rng.choice([None, True, False]),
                      earnings_date=_maybe(rng, exp + timedelta(days=rng.choice([-3, 0, 10, 45]))))
        if rng.random() < 0.2:
            c = c.but(sector="Energy", warnings=("from the source",))
        if rng.random() < 0.1:  # scored before: figures kept when none can be computed
            c = c.but(annualised_return=0.42, prob_otm=0.8)
        out.append(c)
    return out


def book(n: int, seed: int) -> list[Position]:
    rng = random.Random(seed)
    return [Position(sym, rng.choice(["OPT", "OPT", "STK"]), -1, 1.0,
                     None if rng.random() < 0.1 else
                     OptionContract(sym, TODAY + timedelta(days=rng.choice([24, 45])), 90.0))
            for sym in (rng.choice(SYMBOLS) for _ in range(n))]


@pytest.mark.parametrize("held", [0, 1, 4, 12])
@pytest.mark.parametrize("rate", [0.0, 0.043])
def test_score_all_reads_as_scoring_one_by_one_did(held, rate):
    cands = candidates(400, seed=held)
    positions = book(held, seed=held + 100)
    risk, validation = SETTINGS.risk, SETTINGS.validation
    want = [_score(c, positions, risk, validation, rate) for c in cands]
    got = score_all(cands, positions, risk, validation, rate)
    assert got == want
    assert [repr(c) for c in got] == [repr(c) for c in want]  # -0.0, 1 vs 1.0
    assert score(cands[0], positions, risk, validation, rate) == want[0]
    assert score_all([], positions, risk, validation) == []


def test_annualised_return_is_the_figure_alone():
    for c in candidates(50, seed=9):
        assert annualised_return_on_margin(c) == _figures(c, 0.0).annualised_return


def test_fast_copies_are_the_dataclass_own():
    c = candidates(1, seed=3)[0]
    assert c.but(score=0.5, sector="X") == replace(c, score=0.5, sector="X")
    assert c.with_warning("w").warnings == (*c.warnings, "w")
    with pytest.raises(TypeError, match="no field"):
        c.but(nonsense=1)
    names = ("symbol", "expiration", "strike", "underlying_price", "dte", "otm_pct", "bid",
             "delta", "source_row")
    rows = [("AAPL", TODAY, 200.0, 231.4, 24, 0.13, 1.19, -0.2, 5)] * 2
    built = Candidate.many(names, rows)
    assert built == [Candidate(**dict(zip(names, row, strict=True))) for row in rows]
    assert built[0].score_parts is not built[1].score_parts  # fresh dicts, as the factory
    with pytest.raises(TypeError, match="needs"):
        Candidate.many(("symbol",), [("AAPL",)])


def test_round_all_is_python_round():
    rng = random.Random(5)
    values = [rng.uniform(-2, 2) for _ in range(20_000)]
    values += [k / 10_000 + 0.00005 for k in range(-3000, 3000)]  # the halves
    values += [0.12345, 2.675, 1.00005, -0.0, 0.0, 1e12 + 0.5, 1e300, -1e-9, 0.5, 1.5]
    for digits in (2, 4):
        got = round_all(np.array(values), digits)
        want = [round(v, digits) for v in values]
        assert [repr(g) for g in got] == [repr(w) for w in want]
