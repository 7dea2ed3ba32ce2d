"""The risk governor through the engine, on the simulator with scenario files: every
acceptance criterion of spec 1.3 (governor point), 2.1A, 2.1C, 2.2, 6.1A, 6.2A and 6.4."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import pytest

from core.broker.base import WhatIfMargin
from core.clock import NEW_YORK as NY
from core.db.repos import EquityRepo
from core.models import Opportunity
from tests.core.risk.worlds import short_put, world

CHAIN = ["kill_switch", "broker", "dte", "otm_pct", "delta", "iv_rank", "spread",
         "duplicate", "earnings", "daily_loss", "weekly_loss", "max_drawdown", "max_positions",
         "sector_concentration", "sizing", "margin", "excess_liquidity", "vix_halt"]




def put(symbol: str, strike: float, expiration: date = date(2026, 12, 31), **kw) -> Opportunity:
    return Opportunity(symbol, expiration, strike, None, **kw)


def by_name(decision):
    return {c.name: c for c in decision.checks}


async def test_every_check_runs_in_the_spec_order_and_a_clean_trade_is_approved(desk, caplog):
    with caplog.at_level(logging.INFO):
        engine = await desk()
        decision = await engine.check(put("KO", 66))
    assert [c.name for c in decision.checks] == CHAIN
    assert decision.approved, decision.summary
    assert all(c.status == "pass" for c in decision.checks), decision.as_dict()
    assert decision.whatif.source == "whatif"
    assert "Earnings check: Enabled" in caplog.text


async def test_first_failure_rejects_but_every_check_still_reports(desk):
    engine = await desk(world(positions=[short_put("KO", 66, "2026-12-31")]))
    engine.halt("test halt")
    decision = await engine.check(put("KO", 66))
    assert not decision.approved
    assert decision.rejected_by.name == "kill_switch"
    assert by_name(decision)["duplicate"].status == "fail"
    assert len(decision.checks) == len(CHAIN)
    assert by_name(decision)["margin"].status == "pass"  # what every later check saw


async def test_a_disconnected_broker_rejects_with_a_named_reason(desk):
    engine = await desk()
    await engine.broker.disconnect()
    decision = await engine.check(put("KO", 66))
    assert not decision.approved
    assert decision.rejected_by.name == "broker"
    assert decision.rejected_by.reason.startswith("Broker disconnected")
    assert len(decision.checks) == len(CHAIN)


# --- spec 1.3, point 2: earnings in the governor --------------------------------------


async def test_earnings_5_days_out_with_dte_10_is_rejected(desk, caplog):
    data = world()
    data["underlyings"]["AMD"]["earnings"] = "2026-11-29"  # 5 days out
    engine = await desk(data)
    with caplog.at_level(logging.WARNING):
        decision = await engine.check(put("AMD", 185, date(2026, 12, 4)))  # DTE 10
    earnings = by_name(decision)["earnings"]
    assert earnings.status == "fail"
    assert earnings.reason.startswith("Earnings on 2026-11-29 falls within DTE")
    assert decision.rejected_by.name == "earnings"
    assert "BLOCKED: AMD has earnings on 2026-11-29, within DTE window" in caplog.text


async def test_earnings_20_days_out_with_dte_10_passes(desk):
    data = world()
    data["underlyings"]["AMD"]["earnings"] = "2026-12-14"  # 20 days out
    engine = await desk(data)
    decision = await engine.check(put("AMD", 185, date(2026, 12, 4)))
    assert by_name(decision)["earnings"].status == "pass"
    assert decision.approved


async def test_unavailable_earnings_pass_with_a_prominent_warning(desk, caplog):
    engine = await desk()
    engine.broker.faults.missing_earnings = {"KO"}
    with caplog.at_level(logging.WARNING):
        decision = await engine.check(put("KO", 66))
    assert by_name(decision)["earnings"].status == "warn"
    assert decision.approved
    assert "WARNING: earnings data unavailable" in caplog.text


# --- spec 2.1A: WhatIf margin ------------------------------------------------------------


async def test_whatif_is_used_and_its_margin_matches_the_account_after_the_fill(desk, caplog):
    """The sim's stand-in for "initMarginAfter matches TWS": the what-if's initial margin
    after equals the account's initial margin once the same order has filled."""
    engine = await desk()
    quote = await engine.broker.option_quote(put("KO", 66).contract)
    with caplog.at_level(logging.INFO):
        decision = await engine.check(put("KO", 66).but(premium=quote.bid))  # marketable
    w = decision.whatif
    assert w.source == "whatif" and w.margin_impact == pytest.approx(
        w.init_margin_after - w.init_margin_before)
    assert f"WhatIf margin: estimated=${w.estimated_margin:,.2f}, actual=${w.margin_impact:,.2f}"\
        in caplog.text
    order = engine.margin.whatif_order(decision.opportunity)
    state = await engine.broker.place_order(order)
    assert state.status.value == "Filled"
    after = await engine.broker.account_values()
    assert after.init_margin_req == pytest.approx(w.init_margin_after, abs=0.01)


async def test_whatif_error_falls_back_to_the_estimate_with_warning_everywhere(desk, caplog):
    engine = await desk()
    engine.broker.faults.whatif_error = "Order rejected - margin calc unavailable"
    messages = []
    engine.add_listener(lambda s: messages.append(s.last_message))
    with caplog.at_level(logging.INFO):
        decision = await engine.check(put("KO", 66))
    margin = by_name(decision)["margin"]
    assert margin.status == "warn"
    assert "WhatIf unavailable, using estimate — proceed with caution" in margin.reason
    assert decision.approved and decision.whatif.source == "estimate"
    assert "WhatIf unavailable, using estimate — proceed with caution" in caplog.text
    assert "WhatIf margin: estimated=$" in caplog.text  # logged for every decision
    assert any("WhatIf unavailable" in m for m in messages)  # the notifier hook fired
    kinds = [e.kind for e in engine.audit.list()]
    assert "whatif_fallback" in kinds


async def test_whatif_timeout_falls_back_after_the_timeout(desk):
    engine = await desk(WHATIF_TIMEOUT_SECONDS="0.2")
    engine.broker.faults.whatif_timeout = True
    decision = await engine.check(put("KO", 66))
    assert by_name(decision)["margin"].status == "warn"
    assert "no answer within 0.2 s" in by_name(decision)["margin"].reason


async def test_ibkr_unset_sentinels_are_missing_not_numbers(desk, monkeypatch):
    engine = await desk()
    sentinel = 1.7976931348623157e308

    async def what_if(order):
        return WhatIfMargin(sentinel, sentinel, sentinel, sentinel, sentinel, sentinel, sentinel)

    monkeypatch.setattr(engine.broker, "what_if", what_if)
    decision = await engine.check(put("KO", 66))
    margin = by_name(decision)["margin"]
    assert margin.status == "warn" and "unset" in margin.reason
    assert decision.whatif.source == "estimate"
    assert decision.whatif.margin_impact < 10_000


# --- spec 2.1C: per-trade margin cap -------------------------------------------------------


async def test_per_trade_cap_rejects_with_the_spec_message(desk, caplog):
    engine = await desk(world(cash=100_000), MAX_MARGIN_PER_TRADE_PCT="0.01")
    with caplog.at_level(logging.WARNING):
        decision = await engine.check(put("MSFT", 420))
    margin = by_name(decision)["margin"]
    assert margin.status == "fail"
    assert margin.reason.startswith("Estimate: Trade rejected: margin impact $")
    assert "exceeds 1% cap ($1,000.00)" in margin.reason
    assert "Trade rejected: margin impact $" in caplog.text


async def test_per_trade_cap_applies_to_the_whatif_figure(desk, monkeypatch):
    """Layer 1 passes, IBKR's answer is bigger than the cap: rejected on IBKR's figure."""
    engine = await desk()
    real = engine.broker.what_if

    async def bigger(order):
        wi = await real(order)
        return WhatIfMargin(wi.init_margin_before, wi.init_margin_before + 50_000,
                            wi.maint_margin_before, wi.maint_margin_after,
                            wi.equity_with_loan_before, wi.equity_with_loan_after, wi.commission)

    monkeypatch.setattr(engine.broker, "what_if", bigger)
    decision = await engine.check(put("KO", 66))
    margin = by_name(decision)["margin"]
    assert margin.status == "fail"
    assert margin.reason == "Trade rejected: margin impact $50,000.00 exceeds 10% cap " \
        "($10,000.00)"


# --- spec 2.2: sector concentration -------------------------------------------------------


async def test_three_of_nine_tech_plus_one_tech_is_rejected(desk):
    book = [short_put(s, k) for s, k in (("AAPL", 190), ("MSFT", 400), ("NVDA", 150),
                                         ("JNJ", 140), ("UNH", 280), ("JPM", 260),
                                         ("XOM", 100), ("KO", 60), ("DUK", 105))]
    engine = await desk(world(positions=book))
    decision = await engine.check(put("AMD", 170))
    sector = by_name(decision)["sector_concentration"]
    assert sector.status == "fail"
    assert sector.reason == ("Sector Information Technology concentration 40% exceeds 30% "
                             "limit (4 of 10 positions)")


async def test_three_tech_plus_one_healthcare_is_approved(desk):
    book = [short_put(s, k) for s, k in (("AAPL", 190), ("MSFT", 400), ("NVDA", 150))]
    engine = await desk(world(positions=book))
    decision = await engine.check(put("UNH", 290))
    assert by_name(decision)["sector_concentration"].status == "pass"
    assert decision.approved, decision.summary


async def test_first_trade_of_an_empty_book_passes(desk):
    engine = await desk()
    decision = await engine.check(put("AAPL", 195))
    sector = by_name(decision)["sector_concentration"]
    assert sector.status == "pass"
    assert "10%" in sector.reason


async def test_unknown_is_a_sector_of_its_own(desk):
    book = [short_put(s, k) for s, k in (("ZZZQ", 40), ("ZZZR", 32), ("ZZZS", 36))]
    engine = await desk(world(positions=book))
    decision = await engine.check(put("ZZZT", 45))
    sector = by_name(decision)["sector_concentration"]
    assert sector.status == "fail"
    assert sector.reason.startswith("Sector Unknown concentration 40% exceeds 30% limit")
    assert by_name(await engine.check(put("KO", 66)))["sector_concentration"].status == "pass"


# --- duplicate, max positions --------------------------------------------------------------


async def test_duplicate_position_and_staged_order_are_rejected(desk):
    engine = await desk(world(positions=[short_put("KO", 60, "2026-12-31")]))
    held = await engine.check(put("KO", 60))
    assert by_name(held)["duplicate"].reason == "Duplicate: already short KO 2026-12-31 60P"
    approved = await engine.check(put("KO", 66))
    await engine.stage(approved)
    again = await engine.check(put("KO", 66))
    assert by_name(again)["duplicate"].status == "fail"
    assert "already working or staged" in by_name(again)["duplicate"].reason


async def test_max_positions_and_per_symbol_limit(desk):
    book = [short_put("KO", k) for k in (55, 57, 60)]
    engine = await desk(world(positions=book), MAX_POSITIONS="4")
    per_symbol = await engine.check(put("KO", 66))
    assert by_name(per_symbol)["max_positions"].reason == \
        "3 KO positions open: per-symbol limit 3"
    engine2 = await desk(world(positions=book), MAX_POSITIONS="3")
    full = await engine2.check(put("DUK", 105))
    assert by_name(full)["max_positions"].reason == "3 of 3 positions open: limit reached"


# --- spec 6.1A and the daily breaker: halts persisted -------------------------------------


async def test_daily_loss_is_measured_from_the_previous_close(desk):
    """A $103k close and $100k now is -2.91% today, not "+0.00%" from the first equity
    seen today: a gap between sessions counts, and breaches the -2% limit (halts)."""
    history = [{"date": "2026-11-20", "net_liquidation": 103_000.0},
               {"date": "2026-11-23", "net_liquidation": 103_000.0}]
    engine = await desk(world(equity_history=history))
    decision = await engine.check(put("KO", 66))
    daily = by_name(decision)["daily_loss"]
    assert daily.figures["day_start"] == 103_000.0
    assert daily.figures["change_pct"] == pytest.approx(-3_000 / 103_000)
    assert daily.status == "fail"
    assert daily.reason == ("Daily loss limit exceeded: Daily P&L -2.91% ($100,000.00 vs "
                            "2026-11-23 close $103,000.00; limit -2%)")
    assert engine.kill_switch.state.halted
    assert engine.kill_switch.state.reason.startswith("Daily loss limit exceeded")
    engine.kill_switch.sync()  # from the database: persisted
    assert engine.kill_switch.state.halted


async def test_friday_close_106k_then_monday_100k_halts_at_the_weekly_limit(desk):
    """The weekly baseline is the last close of the previous week: Friday 106k, Monday
    morning 100k is -5.66%, past the -5% limit (the daily limit is widened here so the
    weekly breaker is the one that halts)."""
    monday = world(now="2026-11-30T10:30:00-05:00",
                   equity_history=[{"date": "2026-11-25", "net_liquidation": 106_500.0},
                                   {"date": "2026-11-27", "net_liquidation": 106_000.0}])
    engine = await desk(monday, MAX_DAILY_LOSS_PCT="-0.08")
    decision = await engine.check(put("KO", 66))
    weekly = by_name(decision)["weekly_loss"]
    assert weekly.figures["week_start"] == 106_000.0
    assert weekly.status == "fail"
    assert weekly.reason == ("Weekly loss limit exceeded: Weekly P&L -5.66% ($100,000.00 vs "
                             "previous week's close $106,000.00; limit -5%)")
    assert by_name(decision)["daily_loss"].status == "pass"  # -5.66% within -8%
    assert engine.kill_switch.state.reason.startswith("Weekly loss limit exceeded")


async def test_the_weekly_baseline_is_the_previous_weeks_last_close(desk):
    history = [{"date": "2026-11-16", "net_liquidation": 90_000.0},  # last Monday
               {"date": "2026-11-20", "net_liquidation": 101_000.0},  # last Friday
               {"date": "2026-11-23", "net_liquidation": 100_500.0}]  # this Monday
    engine = await desk(world(equity_history=history))
    decision = await engine.check(put("KO", 66))
    assert by_name(decision)["weekly_loss"].figures["week_start"] == 101_000.0
    assert by_name(decision)["daily_loss"].figures["day_start"] == 100_500.0
    assert by_name(decision)["weekly_loss"].status == "pass"


async def test_no_close_recorded_uses_the_first_equity_seen_with_a_warning(desk):
    engine = await desk(world(equity_history=[]))
    decision = await engine.check(put("KO", 66))
    daily, weekly = by_name(decision)["daily_loss"], by_name(decision)["weekly_loss"]
    assert daily.status == "warn" and weekly.status == "warn"
    assert daily.reason.endswith("no close recorded for session 2026-11-23: baseline is the "
                                 "first equity seen since, $100,000.00 at 2026-11-24 10:30 ET")
    assert "no close recorded for the week before 2026-11-23" in weekly.reason
    assert decision.approved  # a warning, not a rejection


async def test_a_health_check_after_the_close_records_the_sessions_close(desk):
    engine = await desk(world(now="2026-11-24T16:05:00-05:00"))
    await engine.margin.check_account_health()
    await engine.margin.check_account_health()  # one close per session
    closes = [r for r in EquityRepo(engine.db).history(account="DU0000009")
              if r.source == "close"]
    assert [(r.ts.astimezone(NY).date(), r.net_liquidation) for r in closes] == [
        (date(2026, 11, 24), 100_000.0)]


async def test_two_accounts_on_one_database_each_have_their_own_breakers(desk):
    """A check on one account, then on another with a third of the equity, then on the
    first again: nobody's baseline is the other's, nothing halts."""
    big = world(cash=100_000.0)
    small = world(cash=30_000.0)
    small["account"]["id"] = "DU0000777"
    first = await desk(big)
    second = await desk(small)  # the same database
    for engine in (first, second, first):
        engine.margin.health = None  # a fresh account read each time
        decision = await engine.check(put("KO", 66))
        for name in ("daily_loss", "weekly_loss", "max_drawdown"):
            assert by_name(decision)[name].status == "pass", by_name(decision)[name].reason
    assert by_name(decision)["daily_loss"].figures["day_start"] == 100_000.0
    assert not first.kill_switch.state.halted
    repo = EquityRepo(first.db)
    assert repo.peak_equity("DU0000777") == 30_000.0
    assert repo.peak_equity("DU0000009") == 100_000.0


async def test_drawdown_over_10pct_from_the_peak_in_the_database_halts(desk):
    history = [{"date": "2026-10-01", "net_liquidation": 115_000.0},
               {"date": "2026-11-23", "net_liquidation": 100_500.0}]
    engine = await desk(world(equity_history=history))
    decision = await engine.check(put("KO", 66))
    drawdown = by_name(decision)["max_drawdown"]
    assert drawdown.status == "fail"
    assert drawdown.reason.startswith("Max drawdown exceeded: Drawdown from peak -13.")
    assert engine.kill_switch.state.reason.startswith("Max drawdown exceeded")


async def test_peak_equity_survives_a_restart(desk, tmp_path):
    engine = await desk()
    EquityRepo(engine.db).record(datetime.fromisoformat("2026-11-02T16:00:00-05:00"),
                                 125_000.0, account="DU0000009")
    await engine.stop()
    restarted = await desk()  # same database, new process state
    decision = await restarted.check(put("KO", 66))
    assert by_name(decision)["max_drawdown"].figures["peak"] == 125_000.0
    assert by_name(decision)["max_drawdown"].status == "fail"


# --- spec 6.2A: ExcessLiquidity ------------------------------------------------------------


def _thin_book(cash: float, **kw) -> dict:
    return world(cash=cash, positions=[short_put("CAT", 450, quantity=-3),
                                       short_put("MSFT", 420, quantity=-3)], **kw)


async def test_excess_liquidity_under_10pct_rejects(desk):
    probe = await desk(_thin_book(100_000, equity_history=[]))  # records no closes
    maint = (await probe.broker.account_values()).maint_margin_req
    engine = await desk(_thin_book(maint * 1.05))  # ExcessLiquidity ~5% of NLV
    decision = await engine.check(put("KO", 66))
    check = by_name(decision)["excess_liquidity"]
    assert check.status == "fail"
    assert check.reason.startswith("ExcessLiquidity dangerously low (")
    assert not decision.approved


async def test_excess_liquidity_under_20pct_warns_and_approves(desk, caplog):
    probe = await desk(_thin_book(100_000, equity_history=[]))  # records no closes
    maint = (await probe.broker.account_values()).maint_margin_req
    engine = await desk(_thin_book(maint * 1.3, equity_history=[]),
                        MAX_MARGIN_UTILIZATION="1.0",
                        MAX_MARGIN_PER_TRADE_PCT="0.5")
    with caplog.at_level(logging.WARNING):
        decision = await engine.check(put("KO", 66, requested_contracts=1))
    check = by_name(decision)["excess_liquidity"]
    assert check.status == "warn", check.reason
    assert decision.approved, decision.summary
    assert "ExcessLiquidity low" in caplog.text


# --- spec 6.4: VIX ------------------------------------------------------------------------


@pytest.mark.parametrize(("vix", "factor"), [(12, 1.0), (15, 0.8), (18, 0.8), (30, 0.5),
                                             (35, 0.5), (35.01, 0.25), (38, 0.25)])
async def test_vix_factor_is_applied_and_logged(desk, caplog, vix, factor):
    engine = await desk(world(cash=1_000_000, vix=vix))
    with caplog.at_level(logging.INFO):
        decision = await engine.check(put("INTC", 26))
    assert decision.sizing.vix_factor == factor
    assert decision.sizing.contracts == max(1, int(5 * factor))
    assert f"VIX={vix:.2f}, sizing adjustment={factor:g}x" in caplog.text
    assert decision.approved, decision.summary


async def test_vix_over_40_halts_new_positions(desk):
    engine = await desk(world(vix=42.5))
    decision = await engine.check(put("KO", 66))
    vix = by_name(decision)["vix_halt"]
    assert vix.status == "fail" and vix.reason == "VIX 42.5 above 40: no new positions"
    assert decision.opportunity.contracts == 0
    assert not decision.approved


async def test_a_breached_vix_limit_never_reads_as_equal(desk):
    decision = await desk(world(vix=40.01))
    decision = await decision.check(put("KO", 66))
    assert by_name(decision)["vix_halt"].reason == "VIX 40.01 above 40: no new positions"
    at_limit = await (await desk(world(vix=40.0))).check(put("KO", 66))
    assert by_name(at_limit)["vix_halt"].status == "pass"
    assert by_name(at_limit)["vix_halt"].reason == "VIX 40.0 at 40"


async def test_unknown_vix_sizes_at_the_extreme_factor_and_warns(desk):
    engine = await desk(world(cash=1_000_000, vix=None))
    decision = await engine.check(put("INTC", 26))
    assert by_name(decision)["vix_halt"].status == "warn"
    assert decision.sizing.contracts == 1  # 5 x 0.25, rounded down, at least 1


# --- spec 4.4: account health cached, refreshed at least every 5 minutes ------------------


async def test_account_health_is_one_request_cached_for_five_minutes(desk, monkeypatch):
    engine = await desk()
    calls = []
    real = engine.broker.account_values

    async def counting(fresh=False):
        calls.append(engine.clock.now())
        return await real(fresh=fresh)

    monkeypatch.setattr(engine.broker, "account_values", counting)
    await engine.check(put("KO", 66))
    await engine.check(put("KO", 60))
    assert len(calls) == 1
    engine.clock.advance(timedelta(minutes=5, seconds=1))
    await engine.check(put("KO", 60))
    assert len(calls) == 2


async def test_every_decision_is_an_audit_event_with_all_checks(desk):
    engine = await desk()
    await engine.check(put("KO", 66))
    event = engine.audit.list(kinds=["risk_decision"])[0]
    assert event.symbol == "KO" and event.message == "KO 2026-12-31 66P x1: APPROVED"
    assert '"name": "vix_halt"' in event.data
