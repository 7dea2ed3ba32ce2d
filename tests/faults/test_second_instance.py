"""A second engine (a second console, or the CLI) on the same database file. What a
second instance may do is written down in docs/decisions.md, "Second instance".

Named outcomes:
- a halt in one reaches the other at its next kill-switch sync, persisted, with the
  first process's reason; its orders are not sent ("No longer passes the risk checks:
  REJECTED by kill_switch") and stay STAGED; a resume travels the same way.
- the same staged order sent by both at once: exactly one order at the broker(s); the
  other is told "Not sent here: another sender already took this order" (logged) — the
  database claim, whether the two share the broker account or not.
- the other instance connecting (and reconciling) while the first works an order leaves
  it alone: WORKING, followed and timed out by its sender, not cancelled.
- a reconcile with a broker view older than the sender's last write does not move the
  row back; one made while the sender was between its claim and placing reports it
  missing (logged), and the sender's own outcome then stands (FILLED, one trade).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pytest import LogCaptureFixture as Caplog
from pytest import MonkeyPatch

from core.broker.base import OrderStatus
from core.broker.scenario import load_scenario
from core.broker.sim import SimBroker
from core.clock import ManualClock
from core.engine import Engine
from core.market.calendar import default_calendar
from tests.core.risk.worlds import write
from tests.factories import T0, make_settings, sim_engine
from tests.faults.conftest import (
    FAULTS,
    broker_orders,
    current,
    eventually,
    messages,
    quoted,
    sim,
    stage,
)

Pair = Callable[..., Awaitable[tuple[Engine, Engine]]]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    """make(shared_broker, start_b) -> (A, B): two started engines on one database file;
    with `shared_broker` both trade one simulated account (as two clients of one IBKR
    account), else each has its own world (two simulator processes)."""
    engines: list[Engine] = []

    async def make(shared_broker: bool = True, start_b: bool = True,
                   data: dict[str, Any] | None = None,
                   **overrides: str) -> tuple[Engine, Engine]:
        settings = make_settings(tmp_path, **{**FAULTS, "PUTDESK_KILL_SWITCH_SYNC_SECONDS": "0.1",
                                              **overrides})
        path = write(tmp_path, data or quoted(1.00, 1.02))

        def engine(broker: SimBroker | None = None) -> Engine:
            clock = ManualClock(T0)
            broker = broker or SimBroker(load_scenario(path), clock=clock,
                                         calendar=default_calendar())
            return sim_engine(settings, path, clock=clock, broker=broker)

        a = engine()
        b = engine(sim(a) if shared_broker else None)
        engines.extend([a, b])
        await a.start()
        if start_b:
            await b.start()
        return a, b

    yield make
    for engine in engines:
        await engine.stop()


def all_orders(a: Engine, b: Engine, ref: str) -> list[Any]:
    return broker_orders(a, ref) + ([] if b.broker is a.broker else broker_orders(b, ref))


async def test_a_halt_in_one_is_seen_by_the_other(pair: Pair, caplog: Caplog) -> None:
    a, b = await pair()
    row = await stage(b, 1.01)
    a.halt("stepping away (console A)", "operator A")
    await eventually(lambda: b.kill_switch.state.halted)
    seen = b.kill_switch.state
    assert seen.reason == "stepping away (console A)" and seen.persisted
    assert seen.by == "operator A"
    assert b.state.halt.halted  # on B's screen
    [(_row, result)] = await b.execute()
    assert "REJECTED by kill_switch" in result.reason
    assert current(b, row).status == "STAGED" and broker_orders(b, row.order_ref) == []

    b.resume("operator B")
    await eventually(lambda: not a.kill_switch.state.halted)
    [(_row, result)] = await a.execute()  # B's staged order, sent by A after the resume
    assert result.outcome == "FILLED" and len(broker_orders(a, row.order_ref)) == 1
    assert [e.kind for e in a.audit.list(kinds=["halt", "resume"])] == ["resume", "halt"]


@pytest.mark.parametrize("shared_broker", [True, False], ids=["one-account", "two-worlds"])
async def test_a_staged_order_is_sent_once_by_the_pair(
        pair: Pair, caplog: Caplog, shared_broker: bool) -> None:
    a, b = await pair(shared_broker)
    row = await stage(a, 1.01)
    results = await asyncio.gather(a.execute([row.id]), b.execute([row.id]))
    outcomes = [r for batch in results for _row, r in batch]
    assert len(all_orders(a, b, row.order_ref)) == 1
    assert "FILLED" in [r.outcome for r in outcomes]
    assert current(a, row).status == "FILLED"
    assert len(a.trades.all()) == 1
    if not shared_broker:  # nothing at the broker to find: the claim alone decides
        loser = next(r for r in outcomes if r.outcome != "FILLED")
        assert loser.reason == "Not sent here: another sender already took this order"
        assert (f"Order {row.order_ref}: Not sent here: another sender already took this "
                "order") in messages(caplog)


async def test_the_other_connecting_leaves_a_working_order_to_its_sender(pair: Pair) -> None:
    a, b = await pair(start_b=False, data=quoted(1.00, 1.20), ORDER_TIMEOUT_SECONDS="1",
                      ORDER_REPRICE_STEPS="0")
    row = await stage(a, 1.10)  # rests
    sending = asyncio.ensure_future(a.execute([row.id]))
    await eventually(lambda: current(a, row).status == "WORKING")
    await b.start()  # connects and reconciles while A works the order
    assert b.audit.list(kinds=["reconcile"])
    [order] = broker_orders(a, row.order_ref)
    assert order.status is OrderStatus.SUBMITTED  # not cancelled by B
    assert current(a, row).status == "WORKING"
    [(_row, result)] = await sending
    assert result.outcome == "CANCELLED"  # by its sender, at its timeout
    assert current(a, row).status == "CANCELLED"
    assert len(broker_orders(a, row.order_ref)) == 1


async def test_a_stale_broker_view_does_not_move_a_settled_row_back(
        pair: Pair, monkeypatch: MonkeyPatch) -> None:
    a, b = await pair()
    row = await stage(a, 1.01)
    [(_row, result)] = await a.execute()
    assert result.outcome == "FILLED"
    [order] = broker_orders(a, row.order_ref)
    stale = replace(order.state(), status=OrderStatus.SUBMITTED, filled=0)

    async def open_orders() -> list[Any]:  # what B read before A's fill
        return [stale]

    async def fills() -> list[Any]:
        return []

    monkeypatch.setattr(b.broker, "open_orders", open_orders)
    monkeypatch.setattr(b.broker, "fills", fills)
    report = await b.reconcile()
    assert report.updated == []
    saved = current(a, row)
    assert (saved.status, saved.filled) == ("FILLED", 1)


async def test_a_reconcile_while_the_other_is_placing_is_overruled_by_the_sender(
        pair: Pair, caplog: Caplog, monkeypatch: MonkeyPatch) -> None:
    a, b = await pair()
    row = await stage(a, 1.01)
    real = a.adaptive.place_order

    async def other_reconciles_first(*args: Any, **kwargs: Any) -> Any:
        # B's reconnect lands between A's claim and send: A holds the claim (its lease is
        # current), so B leaves the row alone instead of calling it missing.
        report = await b.reconcile()
        assert report.missing_at_broker == [] and report.updated == []
        assert current(b, row).status == "SENDING"
        return await real(*args, **kwargs)

    monkeypatch.setattr(a.adaptive, "place_order", other_reconciles_first)
    [(_row, result)] = await a.execute()
    assert result.outcome == "FILLED"
    assert "was sent but the broker does not have it" not in messages(caplog)
    saved = current(a, row)
    assert (saved.status, saved.filled) == ("FILLED", 1)  # the sender's outcome stands
    assert len(broker_orders(a, row.order_ref)) == 1 and len(a.trades.all()) == 1
    report = await b.reconcile()  # and a later reconcile agrees
    assert report.updated == [] and report.missing_at_broker == []
