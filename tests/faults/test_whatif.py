"""WhatIf faults (spec 2.1A): the broker's what-if times out, fails, or answers with
IBKR's "unset" sentinel. Each time the Layer-1 estimate stands in, and only with the
spec's warning — "WhatIf unavailable, using estimate — proceed with caution" — in the
log, in the margin check's reason, in the audit (kind "whatif_fallback") and through the
notifier. The spec's "WhatIf margin: estimated=$X, actual=n/a, delta=n/a" line is logged
for the decision. Named outcome: the margin check is "warn", the decision's what-if
source is "estimate", and the decision is approved when the estimate is within limits.

Also covered elsewhere (not repeated here):
tests/core/risk/test_governor.py::test_whatif_error_falls_back_to_the_estimate_with_warning_everywhere
(error at check time: check reason, both log lines, audit row, notifier hook).
"""

from __future__ import annotations

import asyncio
import time

from pytest import LogCaptureFixture as Caplog
from pytest import MonkeyPatch

from core.broker.base import OrderRequest, WhatIfMargin
from core.engine import Engine
from core.risk.margin import FALLBACK_TEXT
from tests.faults.conftest import Desk, current, messages, quoted, sim, stage

LABEL = "KO 2026-12-31 68P"
SENTINEL = 1.7976931348623157e308  # IBKR's unset double


def assert_fallback(engine: Engine, caplog: Caplog, problem: str) -> None:
    """The warning everywhere the spec wants it, naming what went wrong."""
    log = messages(caplog)
    assert f"{FALLBACK_TEXT}: {problem} for {LABEL}" in log
    assert any(m.startswith("WhatIf margin: estimated=$") and m.endswith(
        "actual=n/a, delta=n/a") for m in log)
    [audit] = engine.audit.list(kinds=["whatif_fallback"])
    assert audit.severity == "WARNING"
    assert audit.message == f"{FALLBACK_TEXT} ({problem}): {LABEL}"


async def test_whatif_timeout_falls_back_to_the_estimate_without_blocking(
        desk: Desk, caplog: Caplog) -> None:
    engine = await desk(quoted(1.00, 1.02), WHATIF_TIMEOUT_SECONDS="0.3")
    sim(engine).faults.whatif_timeout = True
    ticks = 0

    async def ticker() -> None:  # stands for the engine's loops
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.ensure_future(ticker())
    start = time.perf_counter()
    row = await stage(engine, 1.01)  # the check behind it waited for the what-if
    elapsed = time.perf_counter() - start
    task.cancel()
    assert 0.3 <= elapsed < 2.0
    assert ticks >= 10  # the event loop kept running while the what-if hung
    assert_fallback(engine, caplog, "no answer within 0.3 s")
    decision = engine.audit.list(kinds=["risk_decision"])[0]
    assert decision.severity == "INFO" and "APPROVED" in decision.message
    assert row.status == "STAGED"


async def test_whatif_timeout_at_send_time_sends_with_the_warning_kept(
        desk: Desk, caplog: Caplog) -> None:
    """Re-validation before sending meets the fault: the order goes out on the estimate,
    and the staged order's outcome carries the warning."""
    engine = await desk(quoted(1.00, 1.02), WHATIF_TIMEOUT_SECONDS="0.2")
    row = await stage(engine, 1.01)
    sim(engine).faults.whatif_timeout = True
    [(_row, result)] = await engine.execute()
    assert result.outcome == "FILLED"
    warning = f"margin: {FALLBACK_TEXT} (no answer within 0.2 s)"
    assert any(w.startswith(warning) for w in result.warnings)
    saved = current(engine, row)
    assert saved.status == "FILLED" and f"⚠ {warning}" in (saved.message or "")
    assert_fallback(engine, caplog, "no answer within 0.2 s")


async def test_whatif_error_at_send_time_sends_with_the_warning_kept(
        desk: Desk, caplog: Caplog) -> None:
    engine = await desk(quoted(1.00, 1.02))
    row = await stage(engine, 1.01)
    sim(engine).faults.whatif_error = "Error validating request: margin calc unavailable"
    [(_row, result)] = await engine.execute()
    problem = "broker error: Error validating request: margin calc unavailable"
    assert result.outcome == "FILLED"
    assert f"⚠ margin: {FALLBACK_TEXT} ({problem})" in (current(engine, row).message or "")
    assert_fallback(engine, caplog, problem)


async def test_whatif_sentinel_values_are_unset_not_numbers(
        desk: Desk, caplog: Caplog, monkeypatch: MonkeyPatch) -> None:
    engine = await desk(quoted(1.00, 1.02))

    async def unset(order: object) -> WhatIfMargin:
        return WhatIfMargin(SENTINEL, SENTINEL, SENTINEL, SENTINEL, SENTINEL, SENTINEL,
                            SENTINEL)

    monkeypatch.setattr(engine.broker, "what_if", unset)
    row = await stage(engine, 1.01)
    problem = "the broker left the initial margin figures unset"
    assert_fallback(engine, caplog, problem)
    decision = engine.audit.list(kinds=["risk_decision"])[0]
    assert "APPROVED" in decision.message
    assert row.status == "STAGED"


async def test_whatif_with_only_the_equity_unset_uses_the_account_figure(
        desk: Desk, caplog: Caplog, monkeypatch: MonkeyPatch) -> None:
    """A what-if whose margins are real but EquityWithLoan after is the sentinel: the
    what-if stands (no fallback) and utilisation is measured on today's equity."""
    engine = await desk(quoted(1.00, 1.02))
    real = engine.broker.what_if

    async def half_unset(order: OrderRequest) -> WhatIfMargin:
        wi = await real(order)
        return WhatIfMargin(wi.init_margin_before, wi.init_margin_after,
                            wi.maint_margin_before, wi.maint_margin_after,
                            wi.equity_with_loan_before, SENTINEL, wi.commission)

    monkeypatch.setattr(engine.broker, "what_if", half_unset)
    await stage(engine, 1.01)
    assert engine.audit.list(kinds=["whatif_fallback"]) == []
    assert not any(FALLBACK_TEXT in m for m in messages(caplog))
    assert any(m.startswith("WhatIf margin: estimated=$") and "actual=n/a" not in m
               for m in messages(caplog))
