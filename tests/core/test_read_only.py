"""A read-only engine (PUTDESK_READ_ONLY, `putdesk --read-only`): a second operator's
process. Every order-sending command refuses with a clear reason; its loops stage, send,
close, roll, respond to assignments and reconcile nothing; halting still works."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta

import pytest

from core.db.tables import StagedOrder
from core.engine import ReadOnlyError
from core.execution.orders import READ_ONLY_REASON
from core.models import Opportunity
from tests.core.monitoring.test_monitoring import pressured_amd
from tests.core.risk.worlds import world
from tests.factories import T0

READ_ONLY = {"PUTDESK_READ_ONLY": "true"}


def staged_before_the_open(engine) -> StagedOrder:
    when = T0 - timedelta(days=1)
    return engine.staged.add(StagedOrder(
        created_at=when, updated_at=when, symbol="KO", strike=60.0,
        expiration=date(2026, 12, 18), contracts=1, limit_price=0.50,
        order_ref="putdesk-read-only-test", actor="tester", decision=json.dumps({})))


async def test_every_order_command_refuses_with_the_reason(desk):
    engine = await desk(pressured_amd(), **READ_ONLY)
    assert engine.read_only
    decision = await engine.check(Opportunity("KO", date(2026, 12, 31), 62.0, 0.5,
                                              requested_contracts=1))  # reading is fine
    row = staged_before_the_open(engine)
    refused = [engine.stage(decision), engine.execute(), engine.execute([row.id]),
               engine.cancel_staged(row.id), engine.reconcile(),
               engine.roll_manager.approve("any", "tester"),
               engine.roll_manager.reject("any", "tester"), engine.exits.exit_all("tester")]
    for call in refused:
        with pytest.raises(ReadOnlyError, match=READ_ONLY_REASON):
            await call
    with pytest.raises(ReadOnlyError, match="resuming trading"):
        engine.resume("tester")
    [view] = await engine.monitor.refresh(notify=False)
    closed = await engine.exits.close(view, "operator close", "tester")
    assert closed.outcome == "REJECTED" and closed.reason == READ_ONLY_REASON
    assert engine.executor.market_gate(dry_run=True) == READ_ONLY_REASON
    assert engine.staged.get(row.id).status == "STAGED"
    assert engine.broker._orders == {}


async def test_halting_still_works(desk):
    engine = await desk(world(), **READ_ONLY)
    state = engine.halt("watcher saw trouble", "watcher")
    assert state.halted and state.persisted


async def test_loops_neither_send_nor_close_nor_roll_nor_alert(desk):
    engine = await desk(pressured_amd(), **READ_ONLY)
    row = staged_before_the_open(engine)
    await engine.tick()  # after today's open slot: a trading engine would send it now
    await asyncio.gather(*list(engine._tasks))
    assert engine.staged.get(row.id).status == "STAGED"
    views = await engine.monitor_cycle()  # AMD at a 150% loss: a trading engine proposes
    assert views and views[0].alerts  # alerts are still shown...
    assert engine.rolls.find() == []  # ...but no roll is proposed
    kinds = {e.kind for e in engine.audit.list(None, None, 100)}
    assert not kinds & {"alert", "roll_proposed", "exit", "reconcile"}  # nor notified twice
    assert engine.broker._orders == {}
