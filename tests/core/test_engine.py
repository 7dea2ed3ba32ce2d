import asyncio
import os
import signal
import subprocess
import sys
import time

from core.clock import ManualClock
from core.db.repos import EquityRepo
from core.db.session import Database
from core.market.calendar import MarketSession
from core.risk.kill_switch import KillSwitch
from tests.factories import T0, make_settings, sim_engine


async def test_start_reads_account_session_and_halt(tmp_path):
    engine = sim_engine(make_settings(tmp_path))
    states = []
    engine.add_listener(states.append)
    await engine.start()
    try:
        state = engine.state
        assert state.started and state.broker.connected
        assert state.account is not None and state.account.net_liquidation
        assert state.session is not None and state.session.session is MarketSession.REGULAR
        assert not state.halt.halted
        assert states and states[-1] is state
        # account health is recorded as equity history for the loss breakers
        assert EquityRepo(engine.db).history()[-1].net_liquidation == state.account.net_liquidation
    finally:
        await engine.stop()


async def test_halt_from_another_process_reaches_a_running_engine(tmp_path):
    settings = make_settings(tmp_path, PUTDESK_KILL_SWITCH_SYNC_SECONDS=0.2)
    engine = sim_engine(settings)
    await engine.start()
    try:
        url = settings.app.database_url.get_secret_value()
        KillSwitch(Database(url), ManualClock(T0)).halt("halt from the CLI", "cli")
        deadline = time.monotonic() + 5
        while not engine.state.halt.halted and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert engine.state.halt.halted
        assert engine.state.halt.reason == "halt from the CLI"
    finally:
        await engine.stop()


async def test_broker_drop_is_shown_and_reconnected(tmp_path):
    engine = sim_engine(make_settings(tmp_path, PUTDESK_IBKR_RECONNECT_MAX_SECONDS=1))
    await engine.start()
    try:
        engine.broker.drop_connection("test drop")
        assert not engine.state.broker.connected
        assert "test drop" in engine.state.last_message
        deadline = time.monotonic() + 5
        while not engine.broker.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert engine.broker.connected
        assert engine.state.last_message == "Broker connected"
    finally:
        await engine.stop()


async def test_engine_survives_a_broker_that_cannot_connect(tmp_path):
    settings = make_settings(tmp_path, PUTDESK_BROKER="ibkr", PUTDESK_IBKR_PORT=1,
                             PUTDESK_IBKR_CONNECT_TIMEOUT=1)
    from core.engine import Engine

    engine = Engine.build(settings, clock=ManualClock(T0))
    await engine.start()
    try:
        assert engine.state.started
        assert not engine.state.broker.connected
        assert "Broker connection failed" in engine.state.last_message
        assert await engine.refresh_account() is None
    finally:
        await engine.stop()


ENGINE_PROCESS = """
import asyncio
from core.config import load_settings
from core.engine import Engine

async def main():
    engine = Engine.build(load_settings())
    stop = asyncio.Event()
    await engine.start()
    engine.install_signal_handlers(on_signal=lambda name: stop.set())
    print("READY", flush=True)
    await stop.wait()
    await engine.stop()

asyncio.run(main())
"""


def run_engine_and_signal(tmp_path, sig):
    env = os.environ | {
        "PUTDESK_DATABASE_URL": f"sqlite:///{tmp_path}/putdesk.db",
        "PUTDESK_LOG_FILE": str(tmp_path / "putdesk.log"),
    }
    proc = subprocess.Popen([sys.executable, "-c", ENGINE_PROCESS], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read() if proc.stderr else ""
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    return KillSwitch(Database(env["PUTDESK_DATABASE_URL"]), ManualClock(T0)).sync()


def test_sigterm_halts_a_running_engine_and_persists(tmp_path):
    state = run_engine_and_signal(tmp_path, signal.SIGTERM)
    assert state.halted and state.reason == "Signal SIGTERM received"
    assert state.by.startswith("signal ")


def test_sighup_halts_too(tmp_path):
    state = run_engine_and_signal(tmp_path, signal.SIGHUP)
    assert state.halted and state.reason == "Signal SIGHUP received"



async def test_scenario_equity_history_seeds_an_empty_database_once(tmp_path):
    settings = make_settings(tmp_path)
    engine = sim_engine(settings)
    await engine.start()
    await engine.stop()
    db = Database(settings.app.database_url.get_secret_value())
    history = EquityRepo(db).history()
    seeded = [h for h in history if h.source == "scenario"]
    assert len(seeded) == 15 and seeded[0].ts.isoformat() == "2026-11-03T21:00:00+00:00"
    assert EquityRepo(db).peak_equity("DU0000001") == max(h.net_liquidation for h in history)
    again = sim_engine(settings)
    await again.start()
    await again.stop()
    assert len([h for h in EquityRepo(db).history() if h.source == "scenario"]) == 15


async def _fill_and_see_positions_change(engine) -> list[str]:
    """A marketable sale fills on the simulator; the names of the engine's tasks right
    as the broker says positions changed (the engine hears it first, and spawns then)."""
    from core.broker.base import OptionContract, OrderRequest, OrderType, PositionsChanged

    broker = engine.broker
    chain = await broker.option_chain("KO")
    price = await broker.underlying_price("KO")
    put = OptionContract("KO", chain.expirations[2],
                         min(chain.strikes, key=lambda k: abs(k - 0.95 * price)))
    seen: list[str] = []
    changed = asyncio.Event()

    def hear(event) -> None:
        if isinstance(event, PositionsChanged) and not changed.is_set():
            seen.extend(t.get_name() for t in engine._tasks)
            changed.set()

    broker.add_listener(hear)
    await broker.place_order(OrderRequest("SELL", 1, "test:news", contract=put,
                                          order_type=OrderType.MARKET))
    await asyncio.wait_for(changed.wait(), 10)
    return seen


async def test_only_the_trading_desk_looks_at_the_book_when_positions_change(tmp_path):
    """A fill, an assignment or an expiry: the desk (the console) runs a monitor cycle at
    once; a one-shot command (open + connect) does not, or its look would raise alerts
    and answer assignments beside the desk's."""
    one_shot = sim_engine(make_settings(tmp_path / "a"))
    await one_shot.open()
    await one_shot.broker.connect()
    try:
        assert not [n for n in await _fill_and_see_positions_change(one_shot)
                    if "_first_look" in n]
    finally:
        await one_shot.stop()
    desk = sim_engine(make_settings(tmp_path / "b"))
    await desk.start()
    try:
        assert [n for n in await _fill_and_see_positions_change(desk) if "_first_look" in n]
    finally:
        await desk.stop()
