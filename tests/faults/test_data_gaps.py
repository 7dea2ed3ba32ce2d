"""Data gaps: the broker has no greeks, no IV history; the earnings provider is down.
Spec: don't block on a data gap (1.2B IV history, 1.3 earnings) — pass, prominently
flagged — and never fill the gap with a guess: the unknown value stays unknown in the
candidate, the decision and the trade's entry snapshot.

Named outcomes and log lines:
- missing greeks, candidate: passes, warning "IV rank unknown: no current IV from the
  broker", source delta kept — "No current IV for NVDA: IV rank not checked, candidate
  passes"; the trade's entry snapshot has delta and IV None.
- missing greeks, position: no delta alert, no roll ("delta unavailable") — "Greeks
  unavailable for KO 20261218 66 P: delta alert not checked, no roll proposed until they
  return", once, not every cycle.
- missing IV history: passes, IV rank None (scored as neutral), warning "IV rank unknown:
  no 52-week IV history from the broker" — "No 52-week IV history for NVDA: IV rank not
  checked, candidate passes"; a history request that errors: "IV history for NVDA
  unavailable (...): passing without IV rank".
- earnings provider down (FMP: dead port, HTTP 500, hanging): the earnings check is
  "warn" — "WARNING: earnings data unavailable for KO (...): passing without an earnings
  check"; nothing is cached, so once the provider answers a date within DTE blocks; the
  trade records earnings date and earnings-in-DTE as unknown (None), never "no earnings".

Also covered elsewhere (not repeated here):
tests/core/risk/test_governor.py::test_unavailable_earnings_pass_with_a_prominent_warning
(the simulator's provider cannot say: "warn" + the log line),
tests/core/market/test_earnings.py::test_unavailable_passes_with_the_spec_warning (each
yfinance failure: None + the log line), ::test_fmp_failures_are_named and ::test_fmp_down
(each FMP failure, by name), ::test_failures_are_not_cached (at the service).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from pytest import LogCaptureFixture as Caplog
from pytest import MonkeyPatch

from core.broker.base import BrokerError, IVPoint
from core.db.tables import TradeEntrySnapshot
from core.engine import Engine
from core.models import Candidate, Opportunity
from tests.core.risk.worlds import short_put, world
from tests.faults.conftest import Desk, messages, sim
from tests.http_server import Reply, http_server

EXP = date(2026, 12, 31)


def nvda_candidate() -> Candidate:
    """NVDA 155 put: 14% OTM, 37 DTE, passes every screening filter."""
    return Candidate(symbol="NVDA", expiration=EXP, strike=155.0, underlying_price=180.0,
                     dte=37, otm_pct=(180 - 155) / 180, bid=1.0, raw_iv=0.45, delta=-0.18,
                     open_interest=1000)


def entry_snapshot(engine: Engine, order_ref: str) -> TradeEntrySnapshot:
    trade = engine.trades.by_order_ref(order_ref)
    assert trade is not None
    snapshot = engine.trades.entry_snapshot(trade.id)
    assert snapshot is not None
    return snapshot


async def screen(engine: Engine, candidate: Candidate) -> Candidate:
    result = await engine.screening().run([candidate])
    assert result.rejected == [], result.rejected
    [accepted] = result.accepted
    return accepted


# --- greeks ----------------------------------------------------------------------------


async def test_missing_greeks_candidate_passes_flagged_and_the_trade_records_none(
        desk: Desk, caplog: Caplog) -> None:
    engine = await desk()
    sim(engine).faults.missing_greeks = {"NVDA"}
    c = await screen(engine, nvda_candidate())
    assert "IV rank unknown: no current IV from the broker" in c.warnings
    assert c.iv_rank is None and c.delta == -0.18  # the source's delta, not a guess
    assert "No current IV for NVDA: IV rank not checked, candidate passes" in messages(caplog)

    decision = await engine.check(Opportunity.from_candidate(c))
    assert decision.approved, decision.summary
    row = await engine.stage(decision, "fault-suite")
    [(_row, result)] = await engine.execute()
    assert result.outcome == "FILLED"
    snapshot = entry_snapshot(engine, row.order_ref)
    assert (snapshot.delta, snapshot.iv, snapshot.iv_rank) == (None, None, None)


async def test_missing_greeks_on_a_position_no_delta_alert_no_roll_logged_once(
        desk: Desk, caplog: Caplog) -> None:
    engine = await desk(world(positions=[short_put("KO", 66, "2026-12-18")]))
    sim(engine).faults.missing_greeks = {"KO"}
    [view] = await engine.monitor_cycle(exits=False)
    await engine.monitor_cycle(exits=False)
    assert view.delta is None and view.alerts == ()
    assert view.mark is not None  # prices still come through
    line = ("Greeks unavailable for KO 20261218 66 P: delta alert not checked, no roll "
            "proposed until they return")
    assert messages(caplog).count(line) == 1
    assert engine.exits.roll_blocker(view) == "delta unavailable"
    sim(engine).faults.missing_greeks = set()
    [view] = await engine.monitor_cycle(exits=False)
    assert view.delta is not None
    sim(engine).faults.missing_greeks = {"KO"}
    await engine.monitor_cycle(exits=False)
    assert messages(caplog).count(line) == 2  # gone and back: said again


# --- IV history ------------------------------------------------------------------------


async def test_missing_iv_history_passes_with_iv_rank_unknown(desk: Desk, caplog: Caplog) -> None:
    engine = await desk()
    sim(engine).faults.missing_iv_history = {"NVDA"}
    c = await screen(engine, nvda_candidate())
    assert c.iv_rank is None and c.score is not None
    assert c.score_parts["iv_rank"] == 0.5  # neutral, not a guess either way
    assert "IV rank unknown: no 52-week IV history from the broker" in c.warnings
    assert ("No 52-week IV history for NVDA: IV rank not checked, candidate passes"
            in messages(caplog))
    sim(engine).faults.missing_iv_history = set()
    assert (await screen(engine, nvda_candidate())).iv_rank is not None


async def test_iv_history_request_error_passes_with_iv_rank_unknown(
        desk: Desk, caplog: Caplog, monkeypatch: MonkeyPatch) -> None:
    engine = await desk()

    async def hmds_down(symbol: str, days: int = 365) -> list[IVPoint]:
        raise BrokerError("HMDS query returned no data", code=162)

    monkeypatch.setattr(engine.broker, "iv_history", hmds_down)
    c = await screen(engine, nvda_candidate())
    assert c.iv_rank is None
    assert any(w.startswith("IV rank unknown: HMDS query returned no data") for w in c.warnings)
    assert ("IV history for NVDA unavailable (HMDS query returned no data): passing without "
            "IV rank") in messages(caplog)


# --- earnings provider down -------------------------------------------------------------


@pytest.fixture(params=["dead-port", "http-500", "hangs"])
def fmp_down(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(FMP base URL that fails in this way, the failure as the log names it)."""
    kind = request.param
    if kind == "dead-port":
        with http_server({}) as server:
            url = server.url
        yield url, "FMP unreachable: ConnectError"
        return
    reply = Reply(500, "oops") if kind == "http-500" else Reply(200, [], delay=2.0)
    with http_server({"/stable/earnings": lambda r: reply}) as server:
        yield server.url, ("FMP answered HTTP 500" if kind == "http-500"
                           else "FMP timed out after 0.3 s")


async def test_earnings_provider_down_passes_flagged_never_on_a_guess(
        desk: Desk, caplog: Caplog, fmp_down: tuple[str, str]) -> None:
    url, failure = fmp_down
    engine = await desk(EARNINGS_PROVIDER="fmp", FMP_API_KEY="k-fault", FMP_API_URL=url,
                        EARNINGS_TIMEOUT_SECONDS="0.3")
    decision = await engine.check(Opportunity("KO", EXP, 68.0, None))
    earnings = next(c for c in decision.checks if c.name == "earnings")
    assert earnings.status == "warn"
    assert earnings.reason == ("WARNING: earnings data unavailable — passed without an "
                               "earnings check")
    assert "earnings_date" not in earnings.figures
    assert decision.approved
    assert (f"WARNING: earnings data unavailable for KO ({failure}): passing without an "
            "earnings check") in messages(caplog)

    row = await engine.stage(decision, "fault-suite")
    [(_row, result)] = await engine.execute()
    assert result.outcome == "FILLED"
    snapshot = entry_snapshot(engine, row.order_ref)
    assert snapshot.earnings_date is None
    assert snapshot.earnings_in_dte is None  # unknown, not "no earnings in the window"


async def test_a_provider_failure_is_not_cached_the_next_answer_blocks(
        desk: Desk, caplog: Caplog) -> None:
    answers = [Reply(500, "oops"), Reply(200, [{"symbol": "KO", "date": "2026-12-10"}])]
    with http_server({"/stable/earnings": lambda r: answers.pop(0)}) as server:
        engine = await desk(EARNINGS_PROVIDER="fmp", FMP_API_KEY="k-fault",
                            FMP_API_URL=server.url)
        first = await engine.check(Opportunity("KO", EXP, 68.0, None))
        second = await engine.check(Opportunity("KO", EXP, 68.0, None))
    assert first.approved
    assert second.rejected_by is not None and second.rejected_by.name == "earnings"
    assert "BLOCKED: KO has earnings on 2026-12-10, within DTE window" in messages(caplog)


async def test_earnings_unavailable_in_screening_passes_flagged(desk: Desk, caplog: Caplog) -> None:
    engine = await desk()
    sim(engine).faults.missing_earnings = {"NVDA"}
    c = await screen(engine, nvda_candidate())
    assert c.earnings_known is False and c.earnings_date is None
    assert "WARNING: earnings data unavailable" in c.warnings
    assert any(m.startswith("WARNING: earnings data unavailable for NVDA")
               for m in messages(caplog))
