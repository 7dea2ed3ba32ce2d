"""Order execution on the simulator: spec 2.1B, 3.2A, 3.2B, 3.4A, 3.4B, staging and the
open, batches, idempotent orderRefs, reconciliation after a dropped connection."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta

import pytest

from core.broker.base import OrderRequest, OrderType
from core.execution.staging import LAST_RUN_KEY
from core.models import Opportunity
from tests.core.conftest import FAST
from tests.core.risk.worlds import world, write
from tests.factories import make_settings, sim_engine

KO = "KO 20261231 68 P"




def at(now: str, **kw) -> dict:
    return world(now=now, **kw)


def quoted(bid: float, ask: float, **kw) -> dict:
    return world(option_quotes={KO: {"bid": bid, "ask": ask, "delta": -0.2, "iv": 0.2}}, **kw)


def requote(engine, bid: float, ask: float) -> None:
    """The market moves between staging (inside the entry bounds) and sending."""
    from core.broker.base import OptionContract
    from core.broker.scenario import QuoteSpec

    engine.broker._overrides[OptionContract.parse_key(KO)] = QuoteSpec(
        bid=bid, ask=ask, delta=-0.2, iv=0.2)


async def staged(engine, premium: float | None = None, symbol="KO", strike=68.0,
                 expiration=date(2026, 12, 31)):
    decision = await engine.check(Opportunity(symbol, expiration, strike, premium))
    assert decision.approved, decision.summary
    return await engine.stage(decision, "tester")


def orders_with_ref(engine, ref):
    return [o for o in engine.broker._orders.values() if o.request.order_ref == ref]


# --- spec 3.4B: market hours ------------------------------------------------------------


@pytest.mark.parametrize(("now", "why"), [
    ("2026-11-28T11:00:00-05:00", "CLOSED"),  # Saturday
    ("2026-12-25T11:00:00-05:00", "CLOSED"),  # Christmas
    ("2026-11-27T13:30:00-05:00", "AFTER_HOURS"),  # day after Thanksgiving, early close 13:00
    ("2026-11-24T17:00:00-05:00", "AFTER_HOURS"),
])
async def test_outside_market_hours_nothing_is_sent_and_it_stays_staged(desk, now, why):
    engine = await desk(at(now))
    # An expiration inside the DTE bounds whatever the day.
    row = await staged(engine, expiration=date.fromisoformat(now[:10]) + timedelta(days=30))
    [(_row, result)] = await engine.execute()
    assert result.outcome == "REJECTED"
    assert result.reason.startswith(f"Market closed ({why}")
    assert engine.staged.get(row.id).status == "STAGED"
    assert orders_with_ref(engine, row.order_ref) == []


async def test_dry_run_bypasses_the_market_hours_check_and_sends_nothing(desk):
    engine = await desk(quoted(1.00, 1.10, now="2026-11-28T11:00:00-05:00"))
    row = await staged(engine)
    [(_row, result)] = await engine.execute(dry_run=True)
    assert result.outcome == "DRY_RUN"
    assert result.reason == "Dry run: would SELL 1 KO 20261231 68 P at $1.04"
    assert orders_with_ref(engine, row.order_ref) == []
    assert engine.staged.get(row.id).status == "STAGED"


async def test_pre_market_submission_is_allowed(desk):
    engine = await desk(at("2026-11-24T09:00:00-05:00"), ORDER_TIMEOUT_SECONDS="0.3")
    row = await staged(engine)
    [(_row, result)] = await engine.execute()
    assert not result.reason.startswith("Market closed")
    assert len(orders_with_ref(engine, row.order_ref)) == 1  # sent; rests until the open


async def test_regular_session_order_fills_and_is_recorded(desk, caplog):
    engine = await desk()
    row = await staged(engine)
    with caplog.at_level(logging.INFO):
        [(_row, result)] = await engine.execute()
    assert result.outcome == "FILLED", result.reason
    assert result.filled == 1 and result.reprices >= 1  # started above the bid
    saved = engine.staged.get(row.id)
    assert saved.status == "FILLED" and saved.trade_id is not None
    trade = engine.trades.get(saved.trade_id)
    assert trade.order_ref == row.order_ref and trade.contracts == 1
    assert trade.entry_price == pytest.approx(result.avg_fill_price)
    with engine.db.session() as session:
        from sqlmodel import select

        from core.db.tables import TradeEntrySnapshot
        snap = session.exec(select(TradeEntrySnapshot)
                            .where(TradeEntrySnapshot.trade_id == trade.id)).one()
    assert snap.underlying_price == 76.0 and snap.earnings_date == date(2027, 2, 10)
    assert snap.vix == 18.0
    assert "Post-trade margin: AvailFunds=$" in caplog.text  # spec 2.1B, after the fill


# --- spec 3.4A: premium sanity ----------------------------------------------------------


async def test_premium_above_20pct_of_strike_is_rejected(desk, caplog):
    engine = await desk(quoted(14.0, 14.5))
    row = await staged(engine, premium=14.2)  # 20.9% of 68
    with caplog.at_level(logging.WARNING):
        [(_row, result)] = await engine.execute()
    assert result.outcome == "REJECTED"
    assert result.reason == ("Premium $14.20 suspiciously high (>20% of strike $68 = $13.60)")
    assert "suspiciously high" in caplog.text
    assert engine.staged.get(row.id).status == "REJECTED"
    assert orders_with_ref(engine, row.order_ref) == []


async def test_normal_premium_passes_the_sanity_check(desk):
    engine = await desk(quoted(1.00, 1.10))
    await staged(engine, premium=1.05)  # 1.6% of strike
    [(_row, result)] = await engine.execute()
    assert result.outcome == "FILLED", result.reason


# --- spec 3.2A: spread at order time ----------------------------------------------------


async def test_spread_wider_than_30pct_is_not_placed(desk, caplog):
    engine = await desk(quoted(1.00, 1.10))
    row = await staged(engine, premium=1.20)
    requote(engine, 1.00, 1.40)
    with caplog.at_level(logging.INFO):
        [(_row, result)] = await engine.execute()
    assert result.outcome == "REJECTED" and result.reason == "Spread 40% exceeds max 30%"
    assert "Spread check: bid=$1.00, ask=$1.40, spread=40.0% — WIDE" in caplog.text
    assert orders_with_ref(engine, row.order_ref) == []


async def test_spread_within_limit_is_logged_ok(desk, caplog):
    engine = await desk(quoted(1.00, 1.20))
    await staged(engine, premium=1.10)
    with caplog.at_level(logging.INFO):
        [(_row, result)] = await engine.execute()
    assert "Spread check: bid=$1.00, ask=$1.20, spread=20.0% — OK" in caplog.text
    assert result.outcome == "FILLED"


async def test_spread_limit_comes_from_the_environment(desk):
    engine = await desk(quoted(1.00, 1.10), MAX_EXECUTION_SPREAD_PCT="0.5")
    await staged(engine, premium=1.20)
    requote(engine, 1.00, 1.40)
    [(_row, result)] = await engine.execute()
    assert result.outcome == "FILLED", result.reason


async def test_zero_bid_is_rejected(desk):
    engine = await desk(quoted(0.30, 0.34))
    row = await staged(engine, premium=0.05)
    requote(engine, 0.0, 0.10)
    [(_row, result)] = await engine.execute()
    assert result.outcome == "REJECTED"
    assert result.reason == "Bid is 0: nobody is paying for this put"
    assert orders_with_ref(engine, row.order_ref) == []


# --- spec 3.2B: price stability -----------------------------------------------------------


async def test_deviation_over_50pct_rejects(desk):
    engine = await desk(quoted(1.60, 1.70))
    row = await staged(engine, premium=1.00)
    [(_row, result)] = await engine.execute()
    assert result.outcome == "REJECTED"
    assert result.reason == "Price unstable: live limit $1.64 vs staged $1.00 (64% deviation)"
    assert result.limit_deviation == pytest.approx(0.64)
    assert engine.staged.get(row.id).limit_deviation == pytest.approx(0.64)


async def test_deviation_between_20_and_50pct_warns_and_proceeds(desk, caplog):
    engine = await desk(quoted(1.30, 1.40))
    row = await staged(engine, premium=1.00)
    with caplog.at_level(logging.WARNING):
        [(_row, result)] = await engine.execute()
    assert result.outcome == "FILLED", result.reason
    assert result.limit_deviation == pytest.approx(0.34)
    assert "Price moved: live limit $1.34 vs staged $1.00 (34% deviation)" in caplog.text
    assert "Price moved" in engine.staged.get(row.id).message


async def test_small_deviation_proceeds_without_warning(desk, caplog):
    engine = await desk(quoted(1.00, 1.10))
    await staged(engine, premium=1.00)
    with caplog.at_level(logging.WARNING):
        [(_row, result)] = await engine.execute()
    assert result.limit_deviation == pytest.approx(0.04)
    assert "Price moved" not in caplog.text


async def test_unfilled_order_reprices_toward_the_bid_then_is_cancelled(desk):
    engine = await desk(quoted(1.00, 1.20), ORDER_TIMEOUT_SECONDS="0.6")
    row = await staged(engine, premium=1.10)
    engine.broker.faults.reject_orders = None
    real = engine.broker._fill_plan
    engine.broker._fill_plan = lambda order, qty, what_if=False: (
        real(order, qty, what_if) if what_if else [])  # nobody takes the other side
    [(_row, result)] = await engine.execute()
    assert result.outcome == "CANCELLED"
    assert result.limit_price == 1.09 and result.last_limit == 1.00
    assert result.reprices == 3
    assert engine.staged.get(row.id).status == "CANCELLED"


# --- staging: re-validation, cancel, halts, the open -------------------------------------


async def test_a_staged_order_that_no_longer_passes_is_not_sent_and_says_why(desk):
    engine = await desk()
    row = await staged(engine)
    engine.broker.set_vix(45.0)
    engine.governor._vix = None  # VIX is cached for a minute
    [(_row, result)] = await engine.execute()
    assert result.outcome == "REJECTED"
    assert result.reason.startswith("No longer passes the risk checks: REJECTED by vix_halt")
    saved = engine.staged.get(row.id)
    assert saved.status == "REJECTED" and "vix_halt" in saved.message
    assert orders_with_ref(engine, row.order_ref) == []


async def test_halted_orders_stay_staged(desk):
    engine = await desk()
    row = await staged(engine)
    engine.halt("stepping away")
    [(_row, result)] = await engine.execute()
    assert "kill_switch" in result.reason
    assert engine.staged.get(row.id).status == "STAGED"


async def test_cancel_a_staged_order(desk):
    engine = await desk()
    row = await staged(engine)
    await engine.cancel_staged(row.id, "tester")
    assert engine.staged.get(row.id).status == "CANCELLED"
    assert await engine.execute() == []


async def test_staged_on_sunday_goes_out_at_the_open_once(desk, caplog):
    engine = await desk(at("2026-11-22T18:00:00-05:00"))  # Sunday evening
    early = await staged(engine)
    engine.clock.advance(timedelta(hours=15, minutes=30))  # Monday 09:30
    await engine.tick()
    await asyncio.sleep(0.05)
    assert engine.staged.get(early.id).status == "STAGED"  # before 09:30 + delay
    engine.clock.advance(timedelta(seconds=61))
    later = await staged(engine, strike=67.0)  # staged after the open: waits for command
    with caplog.at_level(logging.INFO):
        await engine.tick()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if not engine.staging.busy and engine.staged.get(early.id).status != "STAGED":
                break
    assert engine.staged.get(early.id).status == "FILLED"
    assert engine.staged.get(later.id).status == "STAGED"
    assert "executing 1 order(s) staged before it" in caplog.text
    assert engine.state_repo.get(LAST_RUN_KEY)[0].startswith("2026-11-23T09:31:00")
    await engine.tick()  # same slot: nothing runs again
    await asyncio.sleep(0.05)
    assert engine.staged.get(later.id).status == "STAGED"


# --- batches and post-trade margin ---------------------------------------------------------


async def test_batch_goes_out_together_with_one_margin_verification(desk, caplog):
    engine = await desk()
    rows = [await staged(engine, symbol=s, strike=k) for s, k in
            (("KO", 68.0), ("AMD", 180.0), ("NVDA", 155.0))]
    with caplog.at_level(logging.INFO):
        results = await engine.execute()
    assert [r.outcome for _row, r in results] == ["FILLED"] * 3
    assert caplog.text.count("Post-trade margin: AvailFunds=") == 1
    assert {engine.staged.get(r.id).status for r in rows} == {"FILLED"}


async def test_post_trade_margin_danger_halts_and_alerts(desk):
    """The market falls as the order fills: ExcessLiquidity < 10% of NLV afterwards."""
    from core.broker.base import FillReceived

    engine = await desk(world(cash=12_000), MAX_MARGIN_PER_TRADE_PCT="0.5")
    await staged(engine, symbol="AMD", strike=180.0)
    engine.broker.add_listener(lambda event: engine.broker.set_price("AMD", 90.0)
                               if isinstance(event, FillReceived) else None)
    [(_row, result)] = await engine.execute()
    assert result.filled == 1
    assert engine.kill_switch.state.halted
    assert engine.kill_switch.state.reason.startswith("Post-trade margin danger")
    alerts = engine.audit.list(kinds=["post_trade_margin"])
    assert alerts and alerts[0].severity == "EMERGENCY"


# --- orderRef: never twice -----------------------------------------------------------------


async def test_an_order_already_at_the_broker_is_adopted_not_sent_again(desk):
    engine = await desk(quoted(1.00, 1.10))
    row = await staged(engine, premium=1.05)
    await engine.broker.place_order(OrderRequest(  # rests: above the ask
        "SELL", 1, row.order_ref, row_contract(row), order_type=OrderType.LIMIT,
        limit_price=1.20))
    [(_row, result)] = await engine.execute()
    assert "adopted" in " ".join(result.warnings)
    assert len(orders_with_ref(engine, row.order_ref)) == 1
    assert result.outcome == "FILLED"


def row_contract(row):
    from core.broker.base import OptionContract
    return OptionContract(row.symbol, row.expiration, row.strike, "P")


async def test_disconnect_after_accept_then_reconcile_leaves_exactly_one_order(tmp_path,
                                                                                caplog):
    caplog.set_level(logging.INFO)
    settings = make_settings(tmp_path, **FAST)
    engine = sim_engine(settings, write(tmp_path, world()))
    await engine.start()
    reconciled = asyncio.Event()  # set when a reconcile has written its summary
    run = engine.reconciler.run

    async def reconcile_then_tell():
        try:
            return await run()
        finally:
            reconciled.set()

    engine.reconciler.run = reconcile_then_tell
    try:
        row = await staged(engine)
        engine.broker.faults.disconnect_after_accept = True
        reconciled.clear()
        [(_row, result)] = await engine.execute()
        assert result.outcome == "UNKNOWN"
        assert (f"Order {row.order_ref}: Connection lost after sending (connection lost "
                "before the order was acknowledged); reconciliation will find the order by "
                "its orderRef — it is never sent twice") in caplog.text
        assert engine.staged.get(row.id).status == "UNKNOWN"
        assert await engine.execute() == []  # UNKNOWN is never sent again
        # The engine reconnects (backoff ~1 s) and reconciles: wait for that reconcile to
        # have finished (its summary logged and audited), not for a time.
        await asyncio.wait_for(reconciled.wait(), 60)
        assert len(orders_with_ref(engine, row.order_ref)) == 1
        saved = engine.staged.get(row.id)
        # Filled as the link dropped, or still resting: nobody follows an UNKNOWN order,
        # so the reconcile cancels it (tests/faults/test_order_life.py).
        assert saved.status in ("CANCELLED", "FILLED")
        kinds = [e.message for e in engine.audit.list(kinds=["reconcile"])]
        assert any("1 matched" in k for k in kinds)
        assert "Reconciled: 1 matched, 1 updated" in caplog.text
    finally:
        await engine.stop()


async def test_reconcile_marks_a_sent_order_the_broker_never_got(desk, caplog):
    engine = await desk()
    row = await staged(engine)
    engine.staged.set_status(row.id, "UNKNOWN", engine.clock.now(), "link dropped")
    with caplog.at_level(logging.WARNING):
        report = await engine.reconcile()
    assert (f"Reconcile: order {row.order_ref} was sent but the broker does not have it; "
            "marked REJECTED, not re-sent") in caplog.text
    assert report.missing_at_broker == [row.order_ref]
    assert engine.staged.get(row.id).status == "REJECTED"
    assert orders_with_ref(engine, row.order_ref) == []  # reported, never re-sent


async def test_reconcile_reports_putdesk_orders_unknown_to_the_database(desk):
    engine = await desk(quoted(1.00, 1.10))
    await engine.broker.place_order(OrderRequest(
        "SELL", 1, "putdesk-0123456789abcdef", row_contract(type("R", (), {
            "symbol": "KO", "expiration": date(2026, 12, 31), "strike": 68.0})),
        order_type=OrderType.LIMIT, limit_price=5.0))
    report = await engine.reconcile()
    assert report.unknown_at_broker == ["putdesk-0123456789abcdef"]


async def test_two_senders_at_once_place_one_order(desk):
    """The open's scheduler and the operator (or two processes) send the same staged
    order at the same moment: the database claim lets exactly one through."""
    engine = await desk()
    row = await staged(engine)
    first, second = await asyncio.gather(engine.execute([row.id]), engine.execute([row.id]))
    outcomes = sorted(r.outcome for _row, r in [*first, *second])
    assert len(orders_with_ref(engine, row.order_ref)) == 1
    assert "FILLED" in outcomes
    assert engine.staged.get(row.id).status == "FILLED"


async def test_reconcile_reports_stock_without_trades(desk):
    engine = await desk(world(stock_positions=[{"symbol": "DUK", "shares": 200,
                                                "avg_price": 110.0}]))
    report = await engine.reconcile()
    assert report.stock_without_trades == ["DUK 200 shares"]
    assert "stock without a put trade: DUK 200 shares" in report.summary()


async def test_a_fill_without_its_price_is_recorded_at_the_staged_limit_and_said(desk, caplog):
    from core.models import OrderResult

    engine = await desk()
    row = await staged(engine, premium=0.55)
    result = OrderResult("FILLED", "reconciled", row.order_ref, 1, filled=1)
    with caplog.at_level(logging.WARNING):
        trade = await engine.executor.record_trade(row, result, None)
    assert trade.entry_price == 0.55
    assert "fill price not reported; entry recorded at the staged limit $0.55" in caplog.text
