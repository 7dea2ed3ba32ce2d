"""Orders that outlive the PutDesk process that sent them (issue 14), against a TWS peer
that outlives every PutDesk process: the peer runs in this test's process, PutDesk runs
as real `putdesk` processes (tests/faults/putdesk_at.py) on one database and one account.

- kill -9 during `execute`, then a restart: the order is adopted and followed to its
  end, one order at the broker, never left working;
- SIGTERM, SIGINT or SIGHUP during `execute`: the order is cancelled before it exits;
- a halt written by another process while an opening order works: cancelled, no fill;
- two processes closing one position: one close at the broker;
- two engines on two client ids and one account: one order.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from core.broker.base import OptionContract
from core.broker.ibkr import IbkrBroker
from core.broker.scenario import load_scenario
from core.broker.sim import SimBroker
from core.clock import ManualClock, SystemClock
from core.db.session import Database
from core.engine import Engine
from core.paper import TwsPeer
from core.risk.kill_switch import KillSwitch
from tests.core.risk.worlds import world, write
from tests.factories import make_settings
from tests.faults.conftest import KO, quoted, stage

REPO = Path(__file__).parents[2]
KO_68 = OptionContract("KO", date(2026, 12, 31), 68.0)


@dataclass
class Gateway:
    """The peer (TWS) with its world, and what a PutDesk process needs to reach it."""

    sim: SimBroker
    peer: TwsPeer
    home: Path
    now: datetime

    def env(self, client_id: int, **extra: object) -> dict[str, str]:
        values = {"PUTDESK_DATABASE_URL": f"sqlite:///{self.home}/putdesk.db",
                  "PUTDESK_LOG_FILE": str(self.home / "putdesk.log"),
                  "PUTDESK_BROKER": "ibkr", "PUTDESK_IBKR_PORT": str(self.peer.port),
                  "PUTDESK_IBKR_CLIENT_ID": str(client_id),
                  "PUTDESK_IBKR_CONNECT_TIMEOUT": "5", "PUTDESK_IBKR_REQUEST_TIMEOUT": "5",
                  "PUTDESK_IBKR_MARKET_DATA_TIMEOUT": "3",
                  "PUTDESK_KILL_SWITCH_SYNC_SECONDS": "0.3",
                  "EXECUTION_AUTO_AT_OPEN": "false",
                  "PUTDESK_TEST_CLOCK_START": self.now.isoformat(),
                  **{k: str(v) for k, v in extra.items()}}
        return {**os.environ, **values}

    def engine(self, client_id: int, **settings: object) -> Engine:
        """An engine in this process on the same database and peer (another client)."""
        s = make_settings(self.home, PUTDESK_BROKER="ibkr", PUTDESK_IBKR_PORT=self.peer.port,
                          PUTDESK_IBKR_CLIENT_ID=client_id, PUTDESK_IBKR_CONNECT_TIMEOUT=5,
                          EXECUTION_AUTO_AT_OPEN="false", **settings)
        return Engine.build(s, clock=ManualClock(self.now))

    def orders(self, ref: str) -> list[Any]:
        """Every order the peer ever took under this orderRef (any client, any state)."""
        return [po for po in self.peer._by_sim.values() if po.order_ref == ref]

    def fills(self, ref: str) -> list[Any]:
        return [f for f in self.sim._fills if f.order_ref == ref]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Any]:
    peers: list[TwsPeer] = []

    async def make(data: dict[str, Any]) -> Gateway:
        scenario = load_scenario(write(tmp_path, data))
        sim = SimBroker(scenario, clock=ManualClock(scenario.now))
        peer = TwsPeer(sim)
        await peer.start()
        peers.append(peer)
        return Gateway(sim, peer, tmp_path, scenario.now)

    yield make
    for p in peers:
        await p.stop()


async def putdesk(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.faults.putdesk_at", *args, env=env, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def finished(proc: asyncio.subprocess.Process, within: float = 90.0
                   ) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def until(check: Any, within: float = 30.0, proc: Any = None) -> None:
    """Until check() holds; fails early (with its stderr) if `proc` exits first."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not check():
        if proc is not None and proc.returncode is not None:
            _rc, _out, err = await finished(proc)
            raise AssertionError(f"the process ended first: {err[-2000:]}")
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def staged_ko(gw: Gateway, premium: float = 1.10) -> Any:
    """A KO 68P sale staged through a governor check in this process (client 30)."""
    engine = gw.engine(30)
    await engine.open()
    await engine.broker.connect()
    try:
        return await stage(engine, premium)
    finally:
        await engine.stop()


def db(gw: Gateway) -> Database:
    return Database(f"sqlite:///{gw.home}/putdesk.db")


def row_of(gw: Gateway, order_id: str, url: str | None = None) -> Any:
    from core.db.repos import StagedOrderRepo

    database = Database(url) if url else db(gw)
    try:
        return StagedOrderRepo(database).get(order_id)
    finally:
        database.dispose()


def working_at_peer(gw: Gateway, ref: str) -> bool:
    return any(po.working and po.status in ("Submitted", "PreSubmitted")
               for po in gw.orders(ref))


def working_everywhere(gw: Gateway, row: Any, url: str | None = None) -> bool:
    """Working at the broker, and its sender has written that (WORKING, with the
    broker's order id) to the ledger."""
    if not working_at_peer(gw, row.order_ref):
        return False
    now = row_of(gw, row.id, url)
    return now is not None and now.status == "WORKING" and now.broker_order_id is not None


# --- kill -9, then a restart ------------------------------------------------------------


async def test_kill_9_during_execute_then_a_restart_follows_the_one_order(gateway):
    gw = await gateway(quoted(1.00, 1.20))  # 1.09 rests; walked to the bid it fills
    row = await staged_ko(gw)
    slow = gw.env(31, ORDER_REPRICE_INTERVAL_SECONDS=120, ORDER_TIMEOUT_SECONDS=600)
    first = await putdesk(slow, "execute", "--json")
    await until(lambda: working_everywhere(gw, row), proc=first)
    first.kill()  # SIGKILL: no handler runs, nothing is cancelled
    await first.wait()
    assert working_at_peer(gw, row.order_ref), "the peer outlives PutDesk with the order"
    left = row_of(gw, row.id)
    assert left.status == "WORKING" and f"pid {first.pid}" in (left.sender or "")

    # The restart (same client id, as IBKR requires to touch the order) adopts it at
    # once (its sender's pid is gone) and walks it on to the bid.
    fast = gw.env(31, ORDER_REPRICE_INTERVAL_SECONDS=0.2, ORDER_TIMEOUT_SECONDS=60)
    rc, _out, err = await finished(await putdesk(fast, "execute", "--json"))
    assert rc == 0, err[-3000:]
    assert len(gw.orders(row.order_ref)) == 1, "never a second order"
    assert not working_at_peer(gw, row.order_ref), "never left working"
    done = row_of(gw, row.id)
    assert done.status == "FILLED" and done.filled == 1
    assert sum(f.quantity for f in gw.fills(row.order_ref)) == 1
    assert "adopted" in (done.message or "")
    log = (gw.home / "putdesk.log").read_text()
    assert f"its sender ({left.sender}) stopped" in log or "adopted by" in log


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 1), (signal.SIGINT, 130),
                                       (signal.SIGHUP, 1)])
async def test_a_signal_during_execute_cancels_the_order_before_exiting(gateway, sig, code):
    gw = await gateway(quoted(1.00, 1.20))
    row = await staged_ko(gw)
    proc = await putdesk(gw.env(32, ORDER_REPRICE_INTERVAL_SECONDS=120,
                                ORDER_TIMEOUT_SECONDS=600), "execute", "--json")
    await until(lambda: working_at_peer(gw, row.order_ref), proc=proc)
    proc.send_signal(sig)
    rc, out, err = await finished(proc, 60)
    assert rc == code, err[-3000:]
    [order] = gw.orders(row.order_ref)
    assert order.status == "Cancelled"
    done = row_of(gw, row.id)
    assert done.status == "CANCELLED" and f"Signal {sig.name}" in (done.message or "")
    assert json.loads(out)["interrupted"] == sig.name
    assert "working orders cancelled" in err
    # A one-shot command does not halt the book on a signal (the console does).
    switch = KillSwitch(db(gw), SystemClock())
    assert not switch.sync().halted


# --- a halt from another process ---------------------------------------------------------


async def test_a_halt_from_another_process_cancels_the_opening_order_no_fill_after(gateway):
    gw = await gateway(quoted(1.00, 1.20))
    row = await staged_ko(gw)
    # Left alone it would reach the bid (a fill) 3 reprices after it starts working.
    proc = await putdesk(gw.env(33, ORDER_REPRICE_INTERVAL_SECONDS=1.5,
                                ORDER_TIMEOUT_SECONDS=600), "execute", "--json")
    await until(lambda: working_at_peer(gw, row.order_ref), proc=proc)
    database = db(gw)
    KillSwitch(database, SystemClock()).halt("operator: news", "another ssh session")
    halted_at = len(gw.sim._fills)
    database.dispose()
    rc, out, err = await finished(proc, 60)
    assert rc == 1, err[-3000:]
    assert gw.fills(row.order_ref) == [] and len(gw.sim._fills) == halted_at
    [order] = gw.orders(row.order_ref)
    assert order.status == "Cancelled"
    done = row_of(gw, row.id)
    assert done.status == "CANCELLED" and "Trading halted (operator: news)" in done.message
    [result] = json.loads(out)["orders"]
    assert result["status"] == "CANCELLED"


# --- two processes, one position ----------------------------------------------------------


async def test_two_processes_closing_one_position_send_one_close(gateway):
    data = world(positions=[{"symbol": "KO", "right": "P", "strike": 68.0,
                             "expiration": "2026-12-31", "quantity": -1, "avg_price": 2.00,
                             "opened": "2026-11-10", "underlying_at_entry": 70.0}],
                 option_quotes={KO: {"bid": 7.00, "ask": 9.50, "delta": -0.6, "iv": 0.4}})
    gw = await gateway(data)
    env = gw.env(34, ORDER_REPRICE_INTERVAL_SECONDS=60, ORDER_TIMEOUT_SECONDS=6)
    one = await putdesk(env, "close", "KO 20261231 68 P", "--yes", "--json")
    await until(lambda: any(po.action == "BUY" and po.working
                            for po in gw.peer._by_sim.values()), proc=one)
    two = await putdesk(gw.env(35), "close", "KO 20261231 68 P", "--yes", "--json")
    rc2, out2, err2 = await finished(two)
    _rc1, out1, err1 = await finished(one)
    assert rc2 == 1, err2[-2000:]
    assert "A close for this position is already working" in json.loads(out2)["reason"]
    buys = [po for po in gw.peer._by_sim.values() if po.action == "BUY"]
    assert len(buys) == 1, "one close at the broker"
    assert json.loads(out1)["result"]["outcome"] in ("CANCELLED", "FILLED"), err1[-2000:]


# --- two engines on two client ids, one account -----------------------------------------


async def test_two_engines_on_two_client_ids_send_one_order(gateway):
    gw = await gateway(quoted(1.00, 1.20))
    row = await staged_ko(gw)
    fast = {"ORDER_REPRICE_INTERVAL_SECONDS": "0.1", "ORDER_TIMEOUT_SECONDS": "30"}
    a, b = gw.engine(41, **fast), gw.engine(42, **fast)
    for e in (a, b):
        await e.open()
        await e.broker.connect()
    try:
        assert isinstance(a.broker, IbkrBroker) and isinstance(b.broker, IbkrBroker)
        results = await asyncio.gather(a.execute(), b.execute())
        sent = [r for batch in results for _row, r in batch if r.order_id is not None]
        assert len(sent) == 1 and len(gw.orders(row.order_ref)) == 1
        refused = [r for batch in results for _row, r in batch if r.order_id is None]
        assert all("another sender already took this order" in r.reason for r in refused)
        # B, on its own client id, sees A's order and does not call it missing.
        report = await b.reconcile()
        assert report.missing_at_broker == []
    finally:
        for e in (a, b):
            await e.stop()


async def test_a_second_engine_counts_the_first_ones_working_order_as_a_duplicate(gateway):
    gw = await gateway(quoted(1.00, 1.20))
    row = await staged_ko(gw)
    a, b = gw.engine(43, ORDER_REPRICE_INTERVAL_SECONDS=60), gw.engine(44)
    for e in (a, b):
        await e.open()
        await e.broker.connect()
    try:
        sending = asyncio.ensure_future(a.execute())
        await until(lambda: working_at_peer(gw, row.order_ref))
        from core.models import Opportunity

        decision = await b.check(Opportunity("KO", date(2026, 12, 31), 68.0, 1.10))
        dup = next(c for c in decision.checks if c.name == "duplicate")
        assert dup.status == "fail" and "order" in dup.reason
        a.adaptive.stop_all("test over")
        await sending
    finally:
        for e in (a, b):
            await e.stop()


# --- the database lost during execute -----------------------------------------------------


@pytest.mark.postgres
async def test_postgres_lost_during_execute_exits_named_and_the_row_converges(
        gateway, pg_url, tmp_path):
    """PostgreSQL stops while `putdesk execute` works an opening order: the unreadable
    kill switch halts new risk, so the order is cancelled at the broker at once; the
    outcome cannot be written, and the command ends with a named exit and no stray
    traceback. When the database is back, the next PutDesk process adopts the row (its
    sender is gone) and writes what the broker did."""
    import uuid

    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = pg_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        gw = await gateway(quoted(1.00, 1.20))
        engine = gw.engine(30, PUTDESK_DATABASE_URL=url)
        await engine.open()
        await engine.broker.connect()
        try:
            row = await stage(engine, 1.10)
        finally:
            await engine.stop()
        env = gw.env(36, PUTDESK_DATABASE_URL=url, ORDER_REPRICE_INTERVAL_SECONDS=1.0,
                     ORDER_TIMEOUT_SECONDS=600)
        proc = await putdesk(env, "execute", "--json")
        await until(lambda: working_everywhere(gw, row, url), proc=proc)
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              f"WHERE datname = '{name}'"))
        rc, _out, err = await finished(proc, 90)
        assert rc == 1, err[-3000:]
        assert gw.fills(row.order_ref) == [] and not working_at_peer(gw, row.order_ref)
        assert "database unavailable" in err.lower()
        assert "Traceback" not in err and "never retrieved" not in err
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        rc, _out, err = await finished(await putdesk(env, "execute", "--json"))
        assert rc == 0, err[-3000:]
        check = Database(url)
        try:
            from core.db.repos import StagedOrderRepo, TradeRepo

            done = StagedOrderRepo(check).get(row.id)
            assert done is not None and (done.status, done.filled) == ("CANCELLED", 0)
            assert TradeRepo(check).all() == []
        finally:
            check.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- a cancel from another process ---------------------------------------------------------


async def test_putdesk_cancel_from_another_process_reaches_the_sender(gateway):
    """At IBKR only the client that placed an order may cancel it: `putdesk cancel` in
    another SSH session asks, and the process following the order cancels it at its next
    heartbeat."""
    gw = await gateway(quoted(1.00, 1.20))
    row = await staged_ko(gw)
    sender = await putdesk(gw.env(37, ORDER_REPRICE_INTERVAL_SECONDS=120,
                                  ORDER_TIMEOUT_SECONDS=600, PUTDESK_ORDER_LEASE_SECONDS=3),
                           "execute", "--json")
    await until(lambda: working_at_peer(gw, row.order_ref), proc=sender)
    rc, out, err = await finished(await putdesk(gw.env(38), "cancel", row.order_ref, "--json"))
    assert rc == 0, err[-2000:]
    assert "cancels it at its next heartbeat" in json.loads(out)["result"]
    rc, out, err = await finished(sender, 60)
    assert rc == 1, err[-2000:]
    [order] = gw.orders(row.order_ref)
    assert order.status == "Cancelled"
    done = row_of(gw, row.id)
    assert done.status == "CANCELLED" and "cancelled by cli cancel" in done.message


async def test_putdesk_cancel_of_an_orphan_adopts_and_cancels_it(gateway):
    gw = await gateway(quoted(1.00, 1.20))
    row = await staged_ko(gw)
    env = gw.env(39, ORDER_REPRICE_INTERVAL_SECONDS=120, ORDER_TIMEOUT_SECONDS=600)
    first = await putdesk(env, "execute", "--json")
    await until(lambda: working_at_peer(gw, row.order_ref), proc=first)
    first.kill()
    await first.wait()
    rc, _out, err = await finished(await putdesk(env, "cancel", row.order_ref, "--json"))
    assert rc == 0, err[-2000:]
    assert not working_at_peer(gw, row.order_ref) and len(gw.orders(row.order_ref)) == 1
    assert row_of(gw, row.id).status == "CANCELLED"
