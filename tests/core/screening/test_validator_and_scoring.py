import asyncio
import time
from datetime import date

import pytest

from core.broker.base import IVPoint, OptionContract, Position
from core.broker.pacing import Pacer
from core.broker.scenario import load_scenario
from core.broker.sim import SimBroker
from core.clock import ManualClock
from core.config import load_settings
from core.models import Candidate
from core.screening.scoring import WEIGHTS, score
from core.screening.validator import Validator, iv_rank
from tests.factories import T0

WORLD = load_scenario(__import__("pathlib").Path(__file__).parents[2] / "data" /
                      "screen-world.json")


def cand(symbol="AAPL", strike=200.0, exp=date(2026, 12, 18), price=230.0, **kw):
    return Candidate(symbol=symbol, expiration=exp, strike=strike, underlying_price=price,
                     dte=(exp - T0.date()).days, otm_pct=(price - strike) / price, bid=1.0,
                     **kw)


@pytest.fixture
async def sim():
    broker = SimBroker(WORLD, clock=ManualClock(T0))
    await broker.connect()
    return broker


def test_iv_rank_edges():
    history = [IVPoint(date(2026, 1, d), v) for d, v in ((1, 0.2), (2, 0.6), (3, 0.4))]
    assert iv_rank(0.4, history) == (pytest.approx(0.5), "")
    assert iv_rank(0.9, history)[0] == 1.0 and iv_rank(0.1, history)[0] == 0.0
    flat = [IVPoint(date(2026, 1, 1), 0.3), IVPoint(date(2026, 1, 2), 0.3)]
    rank, note = iv_rank(0.3, flat)
    assert rank is None and "high equals low" in note


async def test_spread_bid_and_iv_rank_outcomes(sim):
    settings = load_settings().validation
    far = cand(strike=100.0)  # bid 0 / ask 0.05
    ok, rejected = await Validator(sim, settings).validate(
        [cand(), far, cand("MSFT", 410.0, date(2026, 12, 31), 470.0),
         cand("NOHX", 70.0, date(2026, 12, 31), 80.0),
         cand("FLAT", 44.0, date(2026, 12, 31), 50.0)])
    reasons = {r.symbol + str(r.strike): r.reason for r in rejected}
    assert reasons["AAPL100.0"].startswith("No live bid")
    assert reasons["MSFT410.0"].startswith("IV rank 13% below minimum 30%")
    by = {c.symbol: c for c in ok}
    assert by["AAPL"].iv_rank == pytest.approx(0.5) and by["AAPL"].live_bid > 0
    assert "IV rank unknown" in by["NOHX"].warnings[0]
    assert "high equals low" in by["FLAT"].warnings[0]


async def test_wide_spread_is_rejected(sim):
    wide = load_settings({"IBKR_MAX_SPREAD_PCT": 0.01}).validation
    _, rejected = await Validator(sim, wide).validate([cand()])
    assert rejected[0].reason.startswith("Spread ") and "exceeds 1% max" in rejected[0].reason


async def test_validation_is_concurrent_and_paced(sim):
    sim.faults.latency_seconds = 0.2
    settings = load_settings({"IBKR_PACING_MSGS_PER_SEC": 50}).validation
    pacer = Pacer(settings.pacing_msgs_per_sec)
    candidates = [cand(strike=190.0 + i * 0.5) for i in range(20)]
    start = time.monotonic()
    ok, rejected = await Validator(sim, settings, pacer).validate(candidates)
    elapsed = time.monotonic() - start
    assert len(ok) + len(rejected) == 20
    # 20 quotes + 1 history + 1 current IV = 22 requests: serial would take 4.4 s
    assert pacer.sent == 22
    assert elapsed < 1.5


async def test_pacer_spaces_requests():
    stamps = []
    pacer = Pacer(20.0)

    async def hit():
        stamps.append(time.monotonic())

    await asyncio.gather(*(pacer(hit) for _ in range(10)))
    assert stamps[-1] - stamps[0] >= 9 * 0.05 - 0.01


def test_score_components_and_diversification_penalty():
    risk = load_settings().risk
    validation = load_settings().validation
    c = cand(delta=-0.15, open_interest=2000).but(live_bid=1.2, spread_pct=0.05, iv_rank=0.6,
                                                  earnings_known=True,
                                                  earnings_date=date(2027, 1, 28))
    alone = score(c, [], risk, validation)
    assert set(alone.score_parts) == set(WEIGHTS) | {"penalty"}
    assert alone.score_parts["prob_otm"] == pytest.approx(0.85)
    assert alone.score_parts["earnings"] == 1.0 and alone.score_parts["penalty"] == 0
    assert alone.sector == "Information Technology"
    held = [Position("AAPL", "OPT", -1, 1.0, OptionContract("AAPL", date(2026, 12, 18), 190.0))]
    crowded = score(c, held, risk, validation)
    assert crowded.score < alone.score and crowded.score_parts["penalty"] > 0.15
    full = score(c, held * 3, risk, validation)
    assert full.score == 0 and any("max 3" in w for w in full.warnings)
