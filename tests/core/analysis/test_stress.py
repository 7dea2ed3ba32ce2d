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


# --- from the mark, at the stated rate; human names; the worst crash's symbol ------------


def test_stress_starts_from_the_mark_at_the_configured_rate():
    """AAPL 200P marked at 2.10: price now is the mark, and the scenario's price is the
    one its implied vol (solved from the mark at the stated rate, independently here with
    scipy) gives after the move."""
    from core.market.pricing import implied_vol

    rate = 0.05
    settings = load_settings({"STRESS_RISK_FREE_RATE": str(rate)}).stress
    book = Book((BookLine("AAPL", 200.0, date(2026, 12, 18), 2, 230.0, 0.28, mark=2.10),),
                (), 100_000.0, 100_000.0, 10_000.0, date(2026, 11, 24), vix=17.5,
                rate=settings.risk_free_rate)
    test = PortfolioStressTest(book, settings)
    assert test.notes == ()
    result = test.run_scenario(Scenario("drop", -0.10, 0.05))
    aapl = result.positions[0]
    assert aapl.price_now == 2.10
    t = (date(2026, 12, 18) - date(2026, 11, 24)).days / 365
    iv = implied_vol(2.10, 230.0, 200.0, t, rate)
    assert iv is not None and abs(iv - 0.28) > 0.01  # not the broker's vol
    expect = float(bs_price(207.0, 200.0, t, iv + 0.05, rate))
    assert aapl.price_after == pytest.approx(expect, abs=1e-5)
    assert aapl.pnl == pytest.approx((2.10 - expect) * 100 * 2, abs=1e-3)


def test_a_mark_no_volatility_reproduces_is_priced_by_the_model_and_said():
    book = Book((BookLine("KO", 80.0, date(2026, 12, 18), 1, 70.0, 0.18, mark=5.0),  # < intrinsic
                 BookLine("XOM", 100.0, date(2026, 12, 18), 1, 110.0, 0.25)),
                (), 100_000.0, 100_000.0, 10_000.0, date(2026, 11, 24), vix=17.5)
    test = PortfolioStressTest(book, SETTINGS)
    assert test.notes == (
        "KO 2026-12-18 80P: no volatility gives its mark 5.00, priced by the model at IV 18%",
        "XOM 2026-12-18 100P: no mark, priced by the model at IV 25%")


def test_scenarios_have_human_names_and_the_crash_names_its_symbol():
    results = PortfolioStressTest(small_book(), SETTINGS).run_all_scenarios()
    crash = results[2]
    assert [r.label for r in results] == [
        "Market drop 5%", "Market drop 10%", f"Single-stock crash 20%: {crash.worst_symbol}",
        "VIX spike to 35", "Correlation crisis 15%"]
    assert crash.as_dict()["label"] == crash.label and crash.as_dict()["name"] == NAMES[2]


def test_the_worst_crash_is_the_underlying_whose_fall_loses_most():
    """Two KO puts outweigh one AAPL put: KO's crash is the worst, and says so."""
    lines = (BookLine("AAPL", 200.0, date(2026, 12, 18), 1, 230.0, 0.28),
             BookLine("KO", 66.0, date(2026, 12, 18), 5, 70.0, 0.30),
             BookLine("KO", 64.0, date(2026, 12, 18), 5, 70.0, 0.30))
    book = Book(lines, (), 100_000.0, 100_000.0, 10_000.0, date(2026, 11, 24), vix=17.5)
    test = PortfolioStressTest(book, SETTINGS)
    crash = test.run_all_scenarios()[2]
    each = {sym: test.run_scenario(Scenario("single_stock_crash", -0.20, 0.10, only=sym)).pnl
            for sym in ("AAPL", "KO")}
    assert min(each, key=each.__getitem__) == "KO" == crash.worst_symbol
    assert crash.label.endswith(": KO") and crash.pnl == pytest.approx(each["KO"])
