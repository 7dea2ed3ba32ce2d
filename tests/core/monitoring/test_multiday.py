"""A simulated week against the book: the clock advances, prices move against the short
puts, and the monitor produces alerts, a roll proposal the operator approves, an expiry
assignment and its detection — and the database agrees with the broker afterwards."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from core.clock import NEW_YORK
from tests.core.monitoring.test_monitoring import position
from tests.core.risk.worlds import world, write
from tests.factories import make_settings, sim_engine


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=NEW_YORK)


async def test_a_week_of_pressure(tmp_path, caplog):
    data = world(positions=[position("AMD", 200, "2026-12-04", avg_price=2.00, entry=215.0),
                            position("KO", 66, "2026-11-27", avg_price=0.30, entry=70.0),
                            position("XOM", 100, "2026-12-18", avg_price=0.80, entry=118.0)])
    # KO's 0-DTE put is bid 0 on Friday morning: let it expire rather than buy it back
    # (EXIT_ZERO_BID_ACTION), so the afternoon's fall through the strike assigns it.
    settings = make_settings(tmp_path, TIME_EXIT_DTE="0", PROFIT_TARGET_PCT="0.99",
                             ORDER_REPRICE_INTERVAL_SECONDS="0.05", ORDER_TIMEOUT_SECONDS="5",
                             EXIT_ZERO_BID_ACTION="let_expire")
    engine = sim_engine(settings, write(tmp_path, data))
    broker, clock = engine.broker, engine.clock
    await engine.open()
    await broker.connect()
    caplog.set_level(logging.INFO)
    try:
        # Tuesday: all quiet.
        views = await engine.monitor_cycle()
        await engine.exits.settled()
        assert not any(v.alerts for v in views)

        assert engine.rolls.find() == []

        # Wednesday: AMD slides to 202 — alerts, and a roll proposal at 150%+ loss.
        clock.set(at(25, 10, 30))
        broker.set_price("AMD", 202.0)
        broker.process_time()
        views = await engine.monitor_cycle()
        await engine.exits.settled()
        amd = next(v for v in views if v.symbol == "AMD")
        assert {a.kind for a in amd.alerts} >= {"underlying_drop"}
        [proposal] = engine.rolls.find(("PENDING",))
        done = await engine.roll_manager.approve(proposal.id, "operator")
        assert done.status == "EXECUTED", done.result

        # Thursday is Thanksgiving: markets closed, nothing is sent.
        clock.set(at(26, 10, 30))
        broker.process_time()
        assert not engine.calendar.session_at(clock.now()).allows_orders
        await engine.monitor_cycle()
        await engine.exits.settled()

        # Friday (early close 13:00): KO falls through the strike after the morning check.
        clock.set(at(27, 10, 30))
        broker.process_time()
        await engine.monitor_cycle()
        await engine.exits.settled()
        clock.set(at(27, 12, 30))
        broker.set_price("KO", 61.0)
        broker.process_time()

        # The weekend: the KO put was assigned at expiration.
        clock.set(at(28, 9, 0))
        broker.process_time()
        await engine.monitor_cycle()
        await engine.exits.settled()
        assert "POSSIBLE ASSIGNMENT DETECTED: KO — 100 shares found in account" in caplog.text

        # The database agrees with the broker.
        trades = engine.trades.all()
        by_symbol = {(t.symbol, t.strike, t.expiration): t for t in trades}
        held = [p for p in await broker.positions()]
        short_puts = {(p.contract.symbol, p.contract.strike, p.contract.expiration)
                      for p in held if p.sec_type == "OPT"}
        assert short_puts == {k for k, t in by_symbol.items() if t.status == "OPEN"}
        ko = by_symbol[("KO", 66.0, datetime(2026, 11, 27).date())]
        assert ko.status == "ASSIGNED" and ko.assignment_detected
        assert any(p.sec_type == "STK" and p.symbol == "KO" and p.quantity == 100
                   for p in held)
        rolled = [t for t in trades if t.rolled_from_trade_id is not None]
        assert len(rolled) == 1 and rolled[0].roll_count == 1
        old = engine.trades.get(rolled[0].rolled_from_trade_id)
        assert old.status == "CLOSED" and old.exit_reason == "rolled"
        kinds = {e.kind for e in engine.audit.list(limit=1000)}
        assert {"alert", "roll_proposed", "roll_approved", "roll_result", "assignment"} <= kinds
        assert engine.snapshots.get("XOM 20261218 100 P") is not None
        assert timedelta(0) <= clock.now() - at(28, 9, 0) < timedelta(minutes=1)
    finally:
        await engine.stop()
