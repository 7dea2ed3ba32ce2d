"""Faults in an order's life, on the simulator: the link drops at every step, the broker
rejects, a fill is partial.

Each disconnect test holds the link down (reconnects fail) until the executor has given
up, then lets the engine's own reconnect run: reconnect -> reconcile. After that there
is exactly one order (or none) at the broker for the staged order, the database says
what the broker says (status, filled, trade size), and the outcome is named in the log.

Named outcomes (staged order status — log line):
- link down before sending: STAGED, nothing sent — "Order <ref> not sent, stays STAGED:
  Cannot confirm the order is not already at the broker: not connected to the broker"
- link drops after the claim, before placing: REJECTED — "Order <ref> not sent: No live
  quote: ..."
- link drops after the broker accepted, before the fill: UNKNOWN — "Order <ref>:
  Connection lost after sending (...)"; after the reconnect FILLED (it filled meanwhile)
  or CANCELLED — "Reconcile: order <ref> was left working when the link dropped: the
  rest cancelled (filled 0 of 1)"
- link drops between partial fills: UNKNOWN — "Connection lost while the order was
  working (filled 1 of 2)", the filled contract recorded as a trade; after the reconnect
  FILLED with the trade grown to 2 contracts, or PARTIAL with the rest cancelled
- link drops while repricing or at the cancel: UNKNOWN, then CANCELLED by the reconcile;
  a cancel that reached the broker but whose confirmation was lost: REJECTED — "was sent
  but the broker does not have it; marked REJECTED, not re-sent" (the broker lists no
  cancelled order without fills: the operator is told to check TWS)
- broker rejects: REJECTED with the broker's reason, audit row "order_rejected"
- partial fill, the rest never fills: PARTIAL — "Filled 1 of 2; the rest cancelled"

Also covered elsewhere (not repeated here):
tests/core/execution/test_execution.py::test_disconnect_after_accept_then_reconcile_leaves_exactly_one_order
(a marketable order: filled as the link dropped, found by orderRef on reconnect) and
::test_reconcile_marks_a_sent_order_the_broker_never_got.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pytest import LogCaptureFixture as Caplog
from pytest import MonkeyPatch

from core.broker.base import BrokerDisconnected, FillReceived, OrderStatus
from core.broker.scenario import QuoteSpec
from core.engine import Engine
from tests.faults.conftest import (
    KO_PUT,
    Desk,
    broker_orders,
    current,
    eventually,
    messages,
    quoted,
    sim,
    stage,
)

RESTING = {"ORDER_TIMEOUT_SECONDS": "0.3", "ORDER_REPRICE_STEPS": "0"}  # never fills


def hold_link_down(engine: Engine, reason: str = "connection dropped") -> None:
    """The link drops and stays down: the engine's reconnects fail until released."""
    sim(engine).faults.connect_error = "TWS not reachable"
    sim(engine).drop_connection(reason)


async def reconnect_and_reconcile(engine: Engine) -> None:
    """Let the engine's own reconnect (backoff ~1 s) connect and reconcile."""
    before = len(engine.audit.list(kinds=["reconcile"]))
    sim(engine).faults.connect_error = None
    await eventually(lambda: engine.broker.connected
                     and len(engine.audit.list(kinds=["reconcile"])) > before, within=8)


def sim_order(engine: Engine, ref: str) -> Any:
    [order] = broker_orders(engine, ref)
    return order


def short_puts(engine: Engine) -> float:
    holding = sim(engine)._options.get(KO_PUT)
    return -holding.quantity if holding else 0


def trade_size(engine: Engine, ref: str) -> int:
    trade = engine.trades.by_order_ref(ref)
    return trade.contracts if trade else 0


def fill_now(engine: Engine, bid: float) -> None:
    """The market comes to the resting order while the link is down (no events)."""
    sim(engine)._overrides[KO_PUT] = QuoteSpec(bid=bid, ask=bid + 0.05)
    sim(engine).process_time()


# --- before sending -------------------------------------------------------------------


async def test_link_down_before_sending_nothing_goes_out_and_it_stays_staged(
        desk: Desk, caplog: Caplog) -> None:
    engine = await desk(quoted(1.00, 1.02))
    row = await stage(engine, 1.01)
    hold_link_down(engine)
    [(_row, result)] = await engine.execute()
    reason = ("Cannot confirm the order is not already at the broker: not connected to the "
              "broker")
    assert result.reason == reason
    assert f"Order {row.order_ref} not sent, stays STAGED: {reason}" in messages(caplog)
    assert current(engine, row).status == "STAGED"

    await reconnect_and_reconcile(engine)
    assert broker_orders(engine, row.order_ref) == []
    [(_row, result)] = await engine.execute()  # sent once the link is back
    assert result.outcome == "FILLED"
    assert len(broker_orders(engine, row.order_ref)) == 1
    assert current(engine, row).status == "FILLED"
    assert trade_size(engine, row.order_ref) == short_puts(engine) == 1


async def test_link_drops_after_the_claim_before_placing_nothing_goes_out(
        desk: Desk, caplog: Caplog, monkeypatch: MonkeyPatch) -> None:
    engine = await desk(quoted(1.00, 1.02))
    row = await stage(engine, 1.01)
    real = engine.adaptive.place_order

    async def drop_then_place(*args: Any, **kwargs: Any) -> Any:
        hold_link_down(engine)
        return await real(*args, **kwargs)

    monkeypatch.setattr(engine.adaptive, "place_order", drop_then_place)
    [(_row, result)] = await engine.execute()
    assert result.outcome == "REJECTED"
    assert result.reason == "No live quote: not connected to the broker"
    assert (f"Order {row.order_ref} not sent: No live quote: not connected to the broker"
            in messages(caplog))
    saved = current(engine, row)
    assert saved.status == "REJECTED" and (saved.message or "").startswith("No live quote")
    assert [e.kind for e in engine.audit.list(kinds=["order_rejected"])] == ["order_rejected"]

    await reconnect_and_reconcile(engine)
    assert broker_orders(engine, row.order_ref) == []
    assert current(engine, row).status == "REJECTED"  # never sent, never re-sent
    assert await engine.execute() == []


# --- after the broker accepted ---------------------------------------------------------


@pytest.mark.parametrize("fills_while_down", [True, False], ids=["fills", "still-resting"])
async def test_link_drops_after_accept_before_the_fill(
        desk: Desk, caplog: Caplog, fills_while_down: bool) -> None:
    engine = await desk(quoted(1.00, 1.20), **RESTING)
    row = await stage(engine, 1.10)  # limit 1.09 rests above the 1.00 bid
    sim(engine).faults.disconnect_after_accept = True
    sim(engine).faults.connect_error = "TWS not reachable"
    [(_row, result)] = await engine.execute()
    assert result.outcome == "UNKNOWN"
    assert any(m.startswith(f"Order {row.order_ref}: Connection lost after sending")
               for m in messages(caplog))
    assert current(engine, row).status == "UNKNOWN"
    assert await engine.execute() == []  # UNKNOWN is never sent again

    if fills_while_down:
        fill_now(engine, 1.10)
    await reconnect_and_reconcile(engine)
    order = sim_order(engine, row.order_ref)  # exactly one order
    saved = current(engine, row)
    if fills_while_down:
        assert order.status is OrderStatus.FILLED
        assert saved.status == "FILLED" and saved.filled == 1
        assert trade_size(engine, row.order_ref) == short_puts(engine) == 1
        assert any(m.startswith("Reconciled: 1 matched, 1 updated, 1 trade(s) recorded")
                   for m in messages(caplog))
    else:
        assert order.status is OrderStatus.CANCELLED
        assert saved.status == "CANCELLED" and saved.filled == 0
        assert trade_size(engine, row.order_ref) == short_puts(engine) == 0
        assert (f"Reconcile: order {row.order_ref} was left working when the link dropped: "
                "the rest cancelled (filled 0 of 1)") in messages(caplog)
        assert "left working when the link dropped" in (saved.message or "")


@pytest.mark.parametrize("fills_while_down", [True, False], ids=["rest-fills", "rest-resting"])
async def test_link_drops_between_partial_fills(
        desk: Desk, caplog: Caplog, fills_while_down: bool) -> None:
    engine = await desk(quoted(1.00, 1.02, cash=400_000), **RESTING)
    row = await stage(engine, 1.01, contracts=2)
    sim(engine).faults.partial_fill = 1  # the first fill is 1 of 2; the rest rests
    loop = asyncio.get_running_loop()

    def drop_after_first_fill(event: object) -> None:
        if isinstance(event, FillReceived):
            loop.call_soon(hold_link_down, engine, "dropped between fills")

    sim(engine).add_listener(drop_after_first_fill)
    [(_row, result)] = await engine.execute()
    sim(engine).remove_listener(drop_after_first_fill)
    assert result.outcome == "UNKNOWN" and result.filled == 1
    assert (f"Order {row.order_ref}: UNKNOWN — Connection lost while the order was working "
            "(filled 1 of 2): the rest could not be cancelled; reconciliation cancels it on "
            "reconnect") in messages(caplog)
    assert current(engine, row).status == "UNKNOWN"
    assert trade_size(engine, row.order_ref) == 1  # what filled is recorded at once
    # A fill whose account cannot be read afterwards halts (spec 2.1B, fail-safe).
    assert engine.kill_switch.state.reason.startswith("Post-trade margin danger")

    if fills_while_down:
        fill_now(engine, 1.00)
    await reconnect_and_reconcile(engine)
    order = sim_order(engine, row.order_ref)
    saved = current(engine, row)
    if fills_while_down:
        assert order.status is OrderStatus.FILLED
        assert (saved.status, saved.filled) == ("FILLED", 2)
        assert trade_size(engine, row.order_ref) == short_puts(engine) == 2  # grown to 2
    else:
        assert order.status is OrderStatus.CANCELLED and order.filled == 1
        assert (saved.status, saved.filled) == ("PARTIAL", 1)
        assert trade_size(engine, row.order_ref) == short_puts(engine) == 1
        assert (f"Reconcile: order {row.order_ref} was left working when the link dropped: "
                "the rest cancelled (filled 1 of 2)") in messages(caplog)
    assert len(engine.trades.all()) == 1
    await engine.notifier.close()  # the halt's EMERGENCY repeats would hold stop() 2 s


# --- while the executor works the order -------------------------------------------------


async def test_link_drops_during_repricing(
        desk: Desk, caplog: Caplog, monkeypatch: MonkeyPatch) -> None:
    engine = await desk(quoted(1.00, 1.20), ORDER_TIMEOUT_SECONDS="0.4")
    row = await stage(engine, 1.10)
    real = sim(engine).modify_order

    async def drop_then_modify(order_id: int, limit: float) -> Any:
        hold_link_down(engine, "dropped while repricing")
        return await real(order_id, limit)

    monkeypatch.setattr(sim(engine), "modify_order", drop_then_modify)
    [(_row, result)] = await engine.execute()
    assert result.outcome == "UNKNOWN" and result.reprices == 0
    log = messages(caplog)
    assert f"Order {row.order_ref}: reprice failed (not connected to the broker)" in log
    assert f"Order {row.order_ref}: cancel failed (not connected to the broker)" in log
    assert current(engine, row).status == "UNKNOWN"

    await reconnect_and_reconcile(engine)
    assert sim_order(engine, row.order_ref).status is OrderStatus.CANCELLED
    saved = current(engine, row)
    assert (saved.status, saved.filled, saved.trade_id) == ("CANCELLED", 0, None)
    assert short_puts(engine) == 0


async def test_link_drops_as_the_cancel_is_sent(
        desk: Desk, caplog: Caplog, monkeypatch: MonkeyPatch) -> None:
    """The cancel never reached the broker: the reconcile cancels the order."""
    engine = await desk(quoted(1.00, 1.20), **RESTING)
    row = await stage(engine, 1.10)
    real = sim(engine).cancel_order

    async def drop_then_cancel(order_id: int) -> None:
        hold_link_down(engine, "dropped at the cancel")
        await real(order_id)

    monkeypatch.setattr(sim(engine), "cancel_order", drop_then_cancel)
    [(_row, result)] = await engine.execute()
    monkeypatch.setattr(sim(engine), "cancel_order", real)
    assert result.outcome == "UNKNOWN"
    assert f"Order {row.order_ref}: cancel failed (not connected to the broker)" in messages(
        caplog)

    await reconnect_and_reconcile(engine)
    assert sim_order(engine, row.order_ref).status is OrderStatus.CANCELLED
    assert current(engine, row).status == "CANCELLED"
    assert (f"Reconcile: order {row.order_ref} was left working when the link dropped: the "
            "rest cancelled (filled 0 of 1)") in messages(caplog)


async def test_link_drops_after_the_cancel_reached_the_broker(
        desk: Desk, caplog: Caplog, monkeypatch: MonkeyPatch) -> None:
    """The broker cancelled, the confirmation was lost: after the reconnect the broker
    lists neither an open order nor a fill for it, so it cannot be told from an order
    that never arrived. It is marked REJECTED with "check TWS", never re-sent."""
    engine = await desk(quoted(1.00, 1.20), **RESTING)
    row = await stage(engine, 1.10)

    async def cancelled_but_unconfirmed(order_id: int) -> None:
        sim(engine)._orders[order_id].status = OrderStatus.CANCELLED
        hold_link_down(engine, "dropped before the cancel was confirmed")
        raise BrokerDisconnected("connection lost before the cancel was confirmed")

    monkeypatch.setattr(sim(engine), "cancel_order", cancelled_but_unconfirmed)
    [(_row, result)] = await engine.execute()
    assert result.outcome == "UNKNOWN"

    await reconnect_and_reconcile(engine)
    assert sim_order(engine, row.order_ref).status is OrderStatus.CANCELLED
    saved = current(engine, row)
    assert saved.status == "REJECTED" and "Check TWS" in (saved.message or "")
    assert (f"Reconcile: order {row.order_ref} was sent but the broker does not have it; "
            "marked REJECTED, not re-sent") in messages(caplog)
    assert await engine.execute() == []


# --- the broker says no, or only partly yes ---------------------------------------------


async def test_broker_rejects_the_order(
        desk: Desk, caplog: Caplog) -> None:
    engine = await desk(quoted(1.00, 1.02))
    row = await stage(engine, 1.01)
    sim(engine).faults.reject_orders = "Insufficient margin for this order"
    [(_row, result)] = await engine.execute()
    reason = "Broker rejected the order: Insufficient margin for this order"
    assert (result.outcome, result.reason) == ("REJECTED", reason)
    assert f"Order {row.order_ref}: REJECTED — {reason}" in messages(caplog)
    saved = current(engine, row)
    assert saved.status == "REJECTED" and saved.message == reason
    [audit] = engine.audit.list(kinds=["order_rejected"])
    assert audit.severity == "WARNING" and reason in audit.message
    assert sim_order(engine, row.order_ref).status is OrderStatus.INACTIVE
    assert engine.trades.all() == [] and short_puts(engine) == 0
    assert await engine.execute() == []  # a rejected order is not retried


async def test_partial_fill_keeps_what_filled_and_cancels_the_rest(
        desk: Desk, caplog: Caplog) -> None:
    """Product decision (docs/decisions.md, Execution): a partial fill is kept and the
    rest cancelled at ORDER_TIMEOUT_SECONDS."""
    engine = await desk(quoted(1.00, 1.02, cash=400_000), **RESTING)
    row = await stage(engine, 1.01, contracts=2)
    sim(engine).faults.partial_fill = 1
    [(_row, result)] = await engine.execute()
    reason = "Filled 1 of 2; the rest cancelled"
    assert (result.outcome, result.filled, result.reason) == ("PARTIAL", 1, reason)
    assert f"Order {row.order_ref}: PARTIAL — {reason}" in messages(caplog)
    saved = current(engine, row)
    assert (saved.status, saved.filled) == ("PARTIAL", 1)
    order = sim_order(engine, row.order_ref)
    assert order.status is OrderStatus.CANCELLED and order.filled == 1
    assert trade_size(engine, row.order_ref) == short_puts(engine) == 1
    assert [e.kind for e in engine.audit.list(kinds=["order_partial"])] == ["order_partial"]
    report = await engine.reconcile()  # the database already says what the broker says
    assert report.updated == [] and report.trades_recorded == []
