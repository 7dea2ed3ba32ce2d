"""Property tests (hypothesis): the governor's invariants over many generated trades and
market states on one simulated account."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.models import Opportunity
from core.risk.sizing import PositionSizer
from tests.core.risk.worlds import UNDERLYINGS, short_put, world, write
from tests.factories import make_settings, sim_engine

SYMBOLS = sorted(UNDERLYINGS)

trades = st.fixed_dictionaries({
    "symbol": st.sampled_from(SYMBOLS),
    "moneyness": st.floats(0.5, 1.1),
    "days": st.integers(1, 120),
    "premium": st.one_of(st.none(), st.floats(0.01, 60)),
    "requested": st.one_of(st.none(), st.integers(1, 50)),
    "vix": st.one_of(st.none(), st.floats(8, 80)),
    "halted": st.booleans(),
    "whatif_fails": st.booleans(),
})


@pytest.fixture(scope="module")
def account(tmp_path_factory):
    """One engine on a loop the examples share (building one per example is slow)."""
    tmp = tmp_path_factory.mktemp("props")
    book = [short_put("AAPL", 190), short_put("JPM", 260), short_put("ZZZQ", 40)]
    loop = asyncio.new_event_loop()
    engine = sim_engine(make_settings(tmp), write(tmp, world(positions=book)))
    loop.run_until_complete(engine.open())
    loop.run_until_complete(engine.broker.connect())
    yield loop, engine
    loop.run_until_complete(engine.stop())
    loop.close()


def _decide(loop, engine, t):
    broker = engine.broker
    broker.set_vix(t["vix"])
    engine.governor._vix = None  # the governor caches VIX for a minute
    broker.faults.whatif_error = "what-if down" if t["whatif_fails"] else None
    if t["halted"]:
        engine.halt("property test")
    elif engine.kill_switch.state.halted:
        engine.resume()
    price = UNDERLYINGS[t["symbol"]]["price"]
    opp = Opportunity(t["symbol"], date(2026, 11, 24) + timedelta(days=t["days"]),
                      round(price * t["moneyness"]), t["premium"],
                      requested_contracts=t["requested"])
    return loop.run_until_complete(engine.governor.pre_trade_check(opp))


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(t=trades)
def test_governor_invariants(account, t):
    loop, engine = account
    decision = _decide(loop, engine, t)
    fixed = engine.settings.sizing.position_size
    if t["halted"]:
        assert not decision.approved  # a halted switch never approves
        assert decision.rejected_by.name == "kill_switch"
    if decision.approved:
        assert all(c.status in ("pass", "warn") for c in decision.checks)
        assert len(decision.checks) == 18
        assert 1 <= decision.opportunity.contracts <= fixed
        if t["requested"] is not None:
            assert decision.opportunity.contracts <= t["requested"]
        assert decision.whatif is not None and decision.whatif.margin_impact is not None
    else:
        assert decision.rejected_by is not None and decision.rejected_by.reason
    assert decision.as_dict()["approved"] is decision.approved


@given(equity=st.one_of(st.none(), st.floats(0, 1e8)), strike=st.floats(0.5, 5000),
       vix=st.one_of(st.none(), st.floats(0, 100)), requested=st.one_of(st.none(),
                                                                       st.integers(1, 100)))
@settings(max_examples=500, deadline=None)
def test_sizing_stays_between_1_and_the_fixed_size(tmp_path_factory, equity, strike, vix,
                                                   requested):
    sizer = PositionSizer(make_settings(tmp_path_factory.getbasetemp()))
    result = sizer.calculate(Opportunity("X", date(2026, 12, 31), strike, 1.0,
                                         requested_contracts=requested), equity, vix)
    if result.vix_halted:
        assert result.contracts == 0 and vix is not None and vix > 40
    else:
        assert 1 <= result.contracts <= 5
        if requested is not None:
            assert result.contracts <= requested
