"""Stress testing (spec 6.3): the five scenarios, per position and portfolio, the
margin-call flag — through the engine's book and `putdesk stress-test`."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from core.analysis.stress import Book, BookLine, PortfolioStressTest, Scenario
from core.config import load_settings
from core.market.pricing import bs_price, ibkr_short_option_margin

NAMES = ["market_drop_5pct", "market_drop_10pct", "single_stock_crash", "vix_spike_35",
         "correlation_crisis"]
SETTINGS = load_settings({}).stress


def small_book(equity: float = 100_000.0, maint: float = 10_000.0) -> Book:
    lines = (BookLine("AAPL", 200.0, date(2026, 12, 18), 2, 230.0, 0.28),
             BookLine("KO", 62.0, date(2026, 12, 18), 3, 70.0, 0.18),
             BookLine("SPY", 600.0, date(2027, 1, 15), 1, 670.0, None))
    return Book(lines, (("INTC", 200.0, 30.0),), equity, equity, maint, date(2026, 11, 24),
                vix=17.5)


def test_each_position_is_repriced_by_black_scholes_and_ibkr_margin():
    test = PortfolioStressTest(small_book(), SETTINGS)
    result = test.run_scenario(Scenario("drop", -0.10, 0.05))
    aapl = result.positions[0]
    t = (date(2026, 12, 18) - date(2026, 11, 24)).days / 365
    expect = float(bs_price(207.0, 200.0, t, 0.33, 0.04))
    assert aapl.price_after == pytest.approx(expect)
    assert aapl.pnl == pytest.approx((aapl.price_now - expect) * 100 * 2)
    assert aapl.margin_after == pytest.approx(
        float(ibkr_short_option_margin(207.0, 200.0, expect)) * 2)
    assert -1 < aapl.delta_after < 0
    stock = 200 * 30.0 * -0.10
    assert result.pnl == pytest.approx(sum(p.pnl for p in result.positions) + stock)


def test_the_five_scenarios_and_the_worst_single_stock():
    results = PortfolioStressTest(small_book(), SETTINGS).run_all_scenarios()
    assert [r.name for r in results] == NAMES
    by = {r.name: r for r in results}
    assert by["market_drop_10pct"].pnl < by["market_drop_5pct"].pnl < 0
    assert by["correlation_crisis"].pnl < by["market_drop_10pct"].pnl
    assert by["vix_spike_35"].pnl < 0 and "x2.00" in by["vix_spike_35"].description
    crash = by["single_stock_crash"]
    assert crash.worst_symbol in {"AAPL", "KO", "SPY", "INTC"}
    assert f"worst is {crash.worst_symbol}" in crash.description
    for sym in ("AAPL", "KO", "SPY", "INTC"):
        other = PortfolioStressTest(small_book(), SETTINGS).run_scenario(
            Scenario("single_stock_crash", -0.20, 0.10, only=sym))
        assert crash.pnl <= other.pnl + 1e-9


def test_margin_call_is_flagged_when_excess_liquidity_goes_negative():
    thin = PortfolioStressTest(small_book(equity=16_000, maint=13_000), SETTINGS)
    by = {r.name: r for r in thin.run_all_scenarios()}
    assert by["correlation_crisis"].margin_call
    assert by["correlation_crisis"].excess_liquidity < 0
    assert not PortfolioStressTest(small_book(), SETTINGS).run_all_scenarios()[0].margin_call


def test_pnl_curve_is_vectorised_and_matches_single_scenarios():
    test = PortfolioStressTest(small_book(), SETTINGS)
    shifts = np.linspace(-0.30, 0.10, 41)
    curve = test.pnl_curve(shifts)
    i = int(np.argmin(np.abs(shifts + 0.10)))
    single = test.run_scenario(Scenario("x", float(shifts[i]),
                                        -float(shifts[i]) * SETTINGS.iv_points_per_pct))
    assert curve[i] == pytest.approx(single.pnl)
    assert curve[0] < curve[-1]


async def test_missing_implied_vol_is_an_assumption_said_with_the_figures(desk):
    from tests.core.monitoring.test_monitoring import position
    from tests.core.risk.worlds import world

    engine = await desk(world(positions=[position("KO", 66)]))
    engine.broker.faults.missing_greeks = {"KO"}
    book = await engine.stress_book()
    assert book.notes == ("KO 20261218 66 P: no implied vol from the broker, 30% assumed",)


async def test_no_underlying_price_stops_the_stress_test(desk, monkeypatch):
    from core.engine import EngineError
    from tests.core.monitoring.test_monitoring import position
    from tests.core.risk.worlds import world

    engine = await desk(world(positions=[position("KO", 66)]))

    async def no_price(symbol):
        return None

    monkeypatch.setattr(engine.broker, "underlying_price", no_price)
    with pytest.raises(EngineError, match="No underlying price for KO 20261218 66 P"):
        await engine.stress_book()
