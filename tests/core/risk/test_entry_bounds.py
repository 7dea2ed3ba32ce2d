"""Issue 16 through the engine: entry bounds in the governor for every path, account
figures that make no sense, the minimum-contract warning, an unknown symbol."""

from __future__ import annotations

import math
from datetime import date

import pytest

from core.models import Opportunity
from tests.core.risk.worlds import world

BOUNDS = ["dte", "otm_pct", "delta", "iv_rank", "spread"]


def by_name(decision):
    return {c.name: c for c in decision.checks}


async def test_a_deep_in_the_money_put_is_rejected_by_named_bounds(desk):
    """BA 240 with BA at 218: 10% in the money, delta about -0.78 (the audit's was a
    -0.87 BA 240 that filled at $25.10)."""
    engine = await desk()
    decision = await engine.check(Opportunity("BA", date(2026, 12, 31), 240.0, None))
    checks = by_name(decision)
    assert not decision.approved
    assert decision.rejected_by.name == "otm_pct"
    assert checks["otm_pct"].reason == "OTM% -10.1% outside range 10-25%"
    assert checks["delta"].status == "fail"
    delta = abs(checks["delta"].figures["delta"])
    assert delta > 0.7
    assert checks["delta"].reason == f"Delta {delta:.2f} outside range 0.05-0.3"
    assert [c.name for c in decision.checks][2:7] == BOUNDS


async def test_a_one_dte_put_is_rejected_by_the_dte_bound(desk):
    engine = await desk()
    decision = await engine.check(Opportunity("KO", date(2026, 11, 25), 66.0, 0.05))
    assert decision.rejected_by.name == "dte"
    assert decision.rejected_by.reason == "DTE 1 below minimum 7"
    assert by_name(decision)["dte"].figures == {"dte": 1, "min": 7, "max": 45}


async def test_a_candidate_outside_the_bounds_is_rejected_as_a_manual_one_is(desk):
    """The console's candidate path: an Opportunity from a candidate carries its own
    figures (delta, bid, ask, IV rank) and still meets the same bounds."""
    engine = await desk()
    opp = Opportunity("KO", date(2026, 12, 31), 66.0, 0.44, underlying_price=76.0,
                      bid=0.41, ask=0.47, delta=-0.35, source="csv", iv_rank=0.12)
    decision = await engine.check(opp)
    checks = by_name(decision)
    assert checks["delta"].reason == "Delta 0.35 outside range 0.05-0.3"
    assert checks["iv_rank"].reason == "IV rank 12% below minimum 30%"
    assert not decision.approved


async def test_a_wide_spread_is_rejected_at_decision_time(desk):
    data = world(option_quotes={"KO 20261231 66 P": {"bid": 0.40, "ask": 0.60,
                                                     "delta": -0.1, "iv": 0.34}})
    engine = await desk(data)
    decision = await engine.check(Opportunity("KO", date(2026, 12, 31), 66.0, None))
    assert decision.rejected_by.name == "spread"
    assert decision.rejected_by.reason == ("Spread 50% exceeds 20% max (bid $0.40, ask "
                                           "$0.60)")


async def test_missing_greeks_and_iv_history_warn_not_block(desk):
    engine = await desk()
    engine.broker.faults.missing_greeks = {"KO"}
    engine.broker.faults.missing_iv_history = {"KO"}
    decision = await engine.check(Opportunity("KO", date(2026, 12, 31), 66.0, None))
    checks = by_name(decision)
    assert checks["delta"].status == "warn"
    assert checks["iv_rank"].status == "warn"
    assert checks["otm_pct"].status == "pass"  # moneyness is still bounded


@pytest.mark.parametrize("nlv", [-1.0, 0.0])
async def test_a_non_positive_net_liquidation_fails_margin_and_excess_liquidity(desk, nlv):
    engine = await desk(world(cash=nlv, equity_history=[]))
    decision = await engine.check(Opportunity("KO", date(2026, 12, 31), 66.0, None))
    checks = by_name(decision)
    assert checks["margin"].status == "fail"
    assert "is not a usable positive figure" in checks["margin"].reason
    assert checks["excess_liquidity"].status == "fail"
    assert checks["excess_liquidity"].reason.startswith(
        f"NetLiquidation ${nlv:,.2f} is not a usable positive figure")
    assert engine.margin.health.excess_ratio is None
    assert engine.state.excess_liquidity_ratio is None
    assert not decision.approved


async def test_a_non_finite_net_liquidation_fails_with_a_reason(desk, monkeypatch):
    engine = await desk()
    real = engine.broker.account_values

    async def broken(fresh: bool = False):
        v = await real(fresh=fresh)
        from dataclasses import replace
        return replace(v, net_liquidation=math.nan)

    monkeypatch.setattr(engine.broker, "account_values", broken)
    decision = await engine.check(Opportunity("KO", date(2026, 12, 31), 66.0, None))
    checks = by_name(decision)
    assert checks["excess_liquidity"].status == "fail"
    assert checks["margin"].status == "fail"
    assert "not a usable positive figure" in checks["excess_liquidity"].reason


async def test_post_trade_verification_never_divides_by_a_negative_nlv(desk):
    engine = await desk(world(cash=-1.0, equity_history=[]))
    result = await engine.margin.verify_post_trade_margin()
    assert not result.is_healthy
    assert result.warning == "NetLiquidation $-1.00 is not a usable positive figure"


async def test_the_minimum_contract_over_a_risk_based_zero_warns_with_the_loss(desk):
    engine = await desk(world(cash=100_000.0, vix=12))
    decision = await engine.check(Opportunity("CAT", date(2026, 12, 31), 450.0, None))
    sizing = by_name(decision)["sizing"]
    assert decision.opportunity.contracts == 1
    assert sizing.status == "warn"
    assert sizing.reason == ("Minimum of 1 contract overrides the risk-based size 0: "
                             "practical loss $11,250.00 (25% of strike) is 5.6x the risk "
                             "budget $2,000.00 (2% of NLV)")
    assert "raised to the minimum of 1" in decision.sizing.explanation


async def test_an_unknown_symbol_stops_at_the_first_check_without_a_margin_alert(desk):
    engine = await desk()
    decision = await engine.check(Opportunity("ZZZZ", date(2026, 12, 18), 100.0, None))
    assert [c.name for c in decision.checks] == ["symbol"]
    assert decision.rejected_by.reason.startswith("Unknown symbol: ZZZZ (broker: No security "
                                                  "definition has been found for ZZZZ")
    assert decision.sizing is None and decision.whatif is None
    events = engine.audit.list()
    assert not [e for e in events if e.severity in ("CRITICAL", "EMERGENCY")]
    assert not [e for e in events if e.kind == "margin_rejection"]
