"""Severities as a trader reads them, and position alerts not repeated on restart."""

from __future__ import annotations

import logging

from tests.core.monitoring.test_monitoring import position, quote
from tests.core.risk.worlds import world


async def test_a_profit_target_close_is_info_not_a_warning(desk, caplog):
    engine = await desk(world(positions=[position("KO", 66, avg_price=1.00)],
                              option_quotes={"KO 20261218 66 P": quote(0.40, 0.44, -0.1)}))
    caplog.set_level(logging.INFO)
    await engine.monitor_cycle()
    await engine.exits.settled()
    assert engine.trades.all()[0].status == "CLOSED"
    exits = [e for e in engine.audit.list() if e.kind == "exit"]
    assert exits and all(e.severity == "INFO" for e in exits), [
        (e.severity, e.message) for e in exits]
    warned = [r.getMessage() for r in caplog.records
              if r.levelno >= logging.WARNING and "KO" in r.getMessage()]
    assert not warned, warned


async def test_a_stop_loss_close_still_warns(desk, caplog):
    engine = await desk(world(positions=[position("KO", 66, avg_price=1.00)],
                              option_quotes={"KO 20261218 66 P": quote(3.00, 3.10, -0.45)}))
    caplog.set_level(logging.INFO)
    await engine.monitor_cycle()
    await engine.exits.settled()
    assert any(r.levelno >= logging.WARNING and "Closing" in r.getMessage()
               for r in caplog.records)


def _alerts(engine) -> list[tuple[str, str]]:
    return [(e.severity, e.message) for e in engine.audit.list() if e.kind == "alert"]


async def test_position_alerts_are_not_raised_again_on_restart_only_on_a_change(desk):
    held = position("KO", 66, avg_price=1.00)
    warn = world(positions=[held], option_quotes={"KO 20261218 66 P": quote(0.98, 1.02, -0.35)})
    first = await desk(warn)
    await first.monitor_cycle()
    assert [s for s, _ in _alerts(first)] == ["WARNING"]
    restarted = await desk(warn)  # the same database: a restart of the console
    await restarted.monitor_cycle()
    await restarted.monitor_cycle()
    assert [s for s, _ in _alerts(restarted)] == ["WARNING"]  # not raised again
    worse = world(positions=[held], option_quotes={"KO 20261218 66 P": quote(0.98, 1.02, -0.55)})
    again = await desk(worse)
    await again.monitor_cycle()
    assert sorted(s for s, _ in _alerts(again)) == ["CRITICAL", "WARNING"]  # a change: raised
