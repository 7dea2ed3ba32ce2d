"""The whole engine flow with PUTDESK_BROKER=ibkr pointed at the TWS wire-protocol peer,
and the same flow on the simulator: scan a Barchart CSV (validated against the broker:
quotes, greeks, IV history), check the best candidate with IBKR's what-if, stage and
execute it (adaptive limit, fill, commission), then monitor the position. Both runs use
one world file, and they must agree figure for figure.

Earnings on the IBKR run come from the FMP provider pointed at a real HTTP server on
127.0.0.1 that answers from the same world (the IBKR path never uses the simulator's
earnings)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.broker.scenario import load_scenario
from core.broker.sim import SimBroker
from core.clock import ManualClock
from core.engine import Engine
from core.models import Opportunity
from core.paper import TwsPeer
from tests.core.conftest import FAST
from tests.factories import make_settings
from tests.http_server import Reply, http_server

DATA = Path(__file__).parents[2] / "data"
WORLD = DATA / "screen-world.json"
CSV = DATA / "barchart-main-view.csv"


def fmp_from(sim: SimBroker):
    def answer(request) -> Reply:
        symbol = request.query.get("symbol", "")
        day = sim.earnings_date(symbol)
        return Reply(200, [{"symbol": symbol, "date": day.isoformat()}] if day else [])
    return answer


@contextlib.asynccontextmanager
async def desk(kind: str, tmp_path: Path, **extra: Any):
    world = load_scenario(WORLD)
    clock = ManualClock(world.now)
    home = tmp_path / kind
    home.mkdir()
    if kind == "sim":
        settings = make_settings(home, PUTDESK_BROKER="sim", PUTDESK_SIM_SCENARIO=str(WORLD),
                                 **FAST, **extra)
        engine = Engine.build(settings, clock=clock)
        await engine.start()
        try:
            yield engine, engine.broker, None
        finally:
            await engine.stop()
        return
    sim = SimBroker(world, clock=clock, label=WORLD.name)
    peer = TwsPeer(sim)
    await peer.start()
    with http_server({"/stable/earnings": fmp_from(sim)}) as fmp:
        settings = make_settings(home, PUTDESK_BROKER="ibkr", PUTDESK_IBKR_PORT=peer.port,
                                 PUTDESK_IBKR_CLIENT_ID=21, PUTDESK_IBKR_CONNECT_TIMEOUT=3,
                                 EARNINGS_PROVIDER="fmp", FMP_API_KEY="flow-test-key",
                                 FMP_API_URL=fmp.url, **FAST, **extra)
        engine = Engine.build(settings, clock=clock)
        await engine.start()
        try:
            yield engine, sim, peer
        finally:
            await engine.stop()
            await peer.stop()


async def flow(kind: str, tmp_path: Path) -> dict[str, Any]:
    async with desk(kind, tmp_path) as (engine, sim, _peer):
        assert engine.broker.info().kind == kind and engine.broker.connected
        scanned = await engine.screening().scan_csv(CSV)
        await engine.record_scan(scanned, "tester")
        best = next(c for c in scanned.accepted if c.symbol == "AAPL")
        decision = await engine.check(Opportunity.from_candidate(best), actor="tester")
        assert decision.approved, decision.summary
        row = await engine.stage(decision, "tester")
        [(_row, result)] = await engine.execute()
        assert result.outcome == "FILLED", result.reason
        saved = await asyncio.to_thread(engine.staged.get, row.id)
        trade = await asyncio.to_thread(engine.trades.get, saved.trade_id)
        views = await engine.monitor_cycle(exits=False)
        [view] = [v for v in views if v.contract == decision.opportunity.contract]
        report = await engine.reconcile()
        held = [(p.contract, p.quantity) for p in await sim.positions() if p.contract]
        return {
            "accepted": sorted((c.symbol, c.strike, str(c.expiration)) for c in
                               scanned.accepted),
            "rejected": sorted((x.symbol, x.strike or 0, x.stage, x.reason)
                               for x in scanned.rejected),
            "aapl": (best.iv_rank, round(best.delta or 0, 4), best.live_bid, best.live_ask,
                     best.score),
            "checks": [(c.name, c.status) for c in decision.checks],
            "contracts": decision.opportunity.contracts,
            "whatif": (decision.whatif.source, round(decision.whatif.margin_impact or 0, 2),
                       decision.whatif.commission),
            "fill": (result.filled, result.avg_fill_price, result.commission),
            "trade": (trade.contracts, trade.entry_price, trade.order_ref == row.order_ref),
            "view": (view.quantity, view.bid, view.ask, round(view.delta or 0, 4),
                     round(view.iv or 0, 4), view.underlying_price),
            "reconciled": (report.clean, report.matched == [row.order_ref]),
            "held": held,
        }


async def test_the_engine_flow_on_ibkr_matches_the_simulator(tmp_path):
    on_sim = await flow("sim", tmp_path)
    on_ibkr = await flow("ibkr", tmp_path)
    assert on_sim["whatif"][0] == "whatif" and on_sim["fill"][0] >= 1
    assert on_sim["reconciled"] == (True, True)
    for key, value in on_sim.items():
        assert on_ibkr[key] == value, key


async def test_a_drop_mid_order_on_ibkr_is_reconciled_without_a_second_order(tmp_path, caplog):
    async with desk("ibkr", tmp_path) as (engine, sim, peer):
        decision = await engine.check(Opportunity.from_candidate(next(
            c for c in (await engine.screening().scan_csv(CSV)).accepted
            if c.symbol == "AAPL")))
        row = await engine.stage(decision, "tester")
        peer.drop_on("placeOrder")  # the world accepts it, then the socket closes
        with caplog.at_level(logging.INFO):
            await engine.execute()
            for _ in range(300):  # the engine reconnects with backoff, then reconciles
                await asyncio.sleep(0.05)
                if engine.broker.connected and (await asyncio.to_thread(
                        engine.staged.get, row.id)).status in ("FILLED", "CANCELLED"):
                    break
        mine = [o for o in sim._orders.values() if o.request.order_ref == row.order_ref]
        assert len(mine) == 1
        saved = await asyncio.to_thread(engine.staged.get, row.id)
        assert saved.status in ("FILLED", "CANCELLED")
        if mine[0].filled:
            assert saved.status == "FILLED" and saved.trade_id is not None
        assert "Broker disconnected" in caplog.text and "Broker connected" in caplog.text
        assert "Reconcile" in caplog.text or "reconcil" in caplog.text.lower()


async def test_a_skewed_tws_clock_is_a_warning(tmp_path, caplog):
    world = load_scenario(WORLD)
    sim = SimBroker(world, clock=ManualClock(world.now + timedelta(seconds=3)))
    peer = TwsPeer(sim)
    await peer.start()
    try:
        settings = make_settings(tmp_path, PUTDESK_BROKER="ibkr", PUTDESK_IBKR_PORT=peer.port,
                                 PUTDESK_IBKR_CONNECT_TIMEOUT=3, EARNINGS_PROVIDER="fmp",
                                 FMP_API_KEY="k", FMP_API_URL="http://127.0.0.1:9")
        engine = Engine.build(settings, clock=ManualClock(world.now))
        with caplog.at_level(logging.WARNING):
            await engine.start()
        await engine.stop()
    finally:
        await peer.stop()
    assert "Clock skew: broker time differs from local time by +3." in caplog.text


async def test_orders_are_refused_with_a_named_reason_while_tws_has_lost_ibkr(tmp_path):
    async with desk("ibkr", tmp_path) as (engine, _sim, peer):
        opp = Opportunity("AAPL", load_scenario(WORLD).now.date() + timedelta(days=24),
                          200.0, 1.5)
        peer.send_error(-1, 1100, "Connectivity between IB and TWS has been lost.")
        for _ in range(100):
            await asyncio.sleep(0.02)
            if not engine.broker.connected:
                break
        decision = await engine.check(opp)
        assert not decision.approved
        assert decision.rejected_by.name == "broker"
        assert decision.rejected_by.reason.startswith("Broker disconnected")
        assert await engine.execute() == []


async def test_putdesk_status_over_ibkr_as_an_operator_runs_it(tmp_path):
    """The CLI in its own process, PUTDESK_BROKER=ibkr, against the peer."""
    import json
    import os
    import sys

    world = load_scenario(WORLD)
    sim = SimBroker(world, clock=ManualClock(world.now))
    peer = TwsPeer(sim)
    await peer.start()
    env = os.environ | {"PUTDESK_DATABASE_URL": f"sqlite:///{tmp_path}/putdesk.db",
                        "PUTDESK_LOG_FILE": str(tmp_path / "putdesk.log"),
                        "PUTDESK_BROKER": "ibkr", "PUTDESK_IBKR_PORT": str(peer.port),
                        "PUTDESK_IBKR_CONNECT_TIMEOUT": "5"}
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "console", "status", "--json", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await peer.stop()
    assert proc.returncode == 0, err.decode()
    data = json.loads(out)
    assert data["broker"]["kind"] == "ibkr" and data["broker"]["connected"] is True
    assert data["broker"]["account_id"] == world.account.id
    assert "Traceback" not in err.decode()


async def aapl_decision(engine):
    scanned = await engine.screening().scan_csv(CSV)
    best = next(c for c in scanned.accepted if c.symbol == "AAPL")
    return await engine.check(Opportunity.from_candidate(best), actor="tester")


@pytest.mark.parametrize("fault", ["whatif_timeout", "whatif_error"])
async def test_a_what_if_fault_over_ibkr_falls_back_to_the_estimate(tmp_path, caplog, fault):
    async with desk("ibkr", tmp_path, WHATIF_TIMEOUT_SECONDS="0.5") as (engine, sim, _peer):
        if fault == "whatif_timeout":
            sim.faults.whatif_timeout = True
        else:
            sim.faults.whatif_error = "margin engine busy"
        with caplog.at_level(logging.WARNING):
            decision = await aapl_decision(engine)
        assert decision.whatif.source == "estimate" and decision.approved
        assert "WhatIf unavailable, using estimate" in caplog.text
        if fault == "whatif_error":
            assert "margin engine busy" in decision.whatif.fallback_reason


@pytest.mark.parametrize("fault", ["reject", "partial"])
async def test_order_faults_over_ibkr_have_named_outcomes(tmp_path, caplog, fault):
    # A larger risk budget sizes the AAPL put at more than one contract.
    async with desk("ibkr", tmp_path, MAX_RISK_PER_TRADE_PCT="0.1",
                    SIZING_PRACTICAL_LOSS_PCT="0.1") as (engine, sim, _peer):
        decision = await aapl_decision(engine)
        assert decision.approved, decision.summary
        row = await engine.stage(decision, "tester")
        if fault == "reject":
            sim.faults.reject_orders = "naked options not permitted"
        else:
            assert decision.opportunity.contracts >= 2
            sim.faults.partial_fill = 1
        with caplog.at_level(logging.INFO):
            [(_row, result)] = await engine.execute()
        saved = await asyncio.to_thread(engine.staged.get, row.id)
        if fault == "reject":
            assert result.outcome == "REJECTED" and saved.status == "REJECTED"
            assert "naked options not permitted" in result.reason
        else:  # one contract fills, then the rest is repriced until filled or cancelled
            fills = [f.quantity for f in sim._fills if f.order_ref == row.order_ref]
            assert fills[0] == 1 and sum(fills) == result.filled
            assert saved.status == result.outcome and saved.filled == result.filled
            assert result.outcome == ("FILLED" if result.filled == decision.opportunity
                                      .contracts else "PARTIAL")
            trade = await asyncio.to_thread(engine.trades.get, saved.trade_id)
            assert trade.contracts == result.filled
        mine = [o for o in sim._orders.values() if o.request.order_ref == row.order_ref]
        assert len(mine) == 1
