"""`putdesk paper` as its own process, reached by the real IBKR adapter over a socket."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from datetime import date
from pathlib import Path

import pytest

from core.broker.base import (
    BrokerMessage,
    FillReceived,
    OptionContract,
    OrderRequest,
    OrderStatus,
)
from core.broker.ibkr import IbkrBroker
from core.config import load_settings
from tests.cli.run import putdesk
from tests.paper.gateway_proc import env_for, running


def adapter(port: int, client_id: int) -> IbkrBroker:
    return IbkrBroker(load_settings({
        "PUTDESK_IBKR_PORT": port, "PUTDESK_IBKR_CLIENT_ID": client_id,
        "PUTDESK_IBKR_CONNECT_TIMEOUT": 10, "PUTDESK_IBKR_REQUEST_TIMEOUT": 10}).ibkr)


async def test_the_gateway_process_serves_the_ibkr_adapter_and_keeps_orders(
        tmp_path: Path) -> None:
    """A client places a resting order and goes away; the gateway keeps it working, and
    the client reconnecting (its fixed client id) finds it."""
    with running(tmp_path / "a") as gw:
        assert "world 2026-11-24 10:30" in gw.first_line and "speed x1" in gw.first_line
        first = adapter(gw.port, 31)
        await first.connect()
        values = await first.account_values()
        assert values.net_liquidation and values.net_liquidation > 0
        put = OptionContract("KO", date(2026, 12, 18), 60.0)
        state = await first.place_order(OrderRequest(
            action="SELL", quantity=1, contract=put, limit_price=50.0,
            order_ref="putdesk-rest"))  # far above the market: it rests
        assert state.status not in (OrderStatus.FILLED, OrderStatus.INACTIVE)
        await first.disconnect()
        again = adapter(gw.port, 31)
        await again.connect()
        try:
            working = [o for o in await again.open_orders()
                       if o.request.order_ref == "putdesk-rest"]
            assert len(working) == 1 and working[0].status is OrderStatus.SUBMITTED
        finally:
            await again.disconnect()
        assert gw.proc.poll() is None
        out = gw.stop()
    assert gw.proc.returncode == 0, out
    assert "Paper gateway stopped" in out


def test_a_port_held_by_another_program_is_a_named_error(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        home = tmp_path / "b"
        home.mkdir()
        r = putdesk(env_for(home), "paper", "--port", str(port))
    assert r.returncode == 1
    assert f"Port {port} on 127.0.0.1 is held by another program" in r.stderr
    assert "not a PutDesk paper gateway" in r.stderr


def test_a_second_gateway_on_one_data_directory_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "c"
    with running(home) as gw:
        r = putdesk(env_for(home), "paper")
        assert r.returncode == 1
        assert f"A paper gateway already runs for {home}" in r.stderr
        assert f"on port {gw.port}" in r.stderr


def test_two_data_directories_get_two_worlds_on_two_ports(tmp_path: Path) -> None:
    with running(tmp_path / "d1") as one, running(tmp_path / "d2") as two:
        assert one.port != two.port


@pytest.mark.parametrize("speed", ["0", "-1", "1000000"])
def test_a_bad_speed_is_refused(tmp_path: Path, speed: str) -> None:
    r = putdesk(env_for(tmp_path), "paper", "--speed", speed)
    assert r.returncode == 2 and "--speed" in r.stderr


# --- the world persists -----------------------------------------------------------------


async def test_a_world_killed_with_a_working_order_and_a_fill_has_both_after_restart(
        tmp_path: Path) -> None:
    """kill -9: nothing is saved on the way out, so this proves the save after every
    change. The restarted world has the working order (same client and order ids), the
    fill's position, cash and execution, and a clock that went on from where it was."""
    home = tmp_path / "w"
    with running(home) as gw:
        client = adapter(gw.port, 41)
        await client.connect()
        put = OptionContract("KO", date(2026, 12, 18), 67.0)
        resting = await client.place_order(OrderRequest(
            action="SELL", quantity=1, contract=put, limit_price=50.0, order_ref="keep-me"))
        quote = await client.option_quote(put)
        assert quote.bid
        fill_seen = asyncio.Event()
        client.add_listener(lambda e: fill_seen.set() if isinstance(e, FillReceived)
                            and e.fill.order_ref == "filled-one" else None)
        filled = await client.place_order(OrderRequest(
            action="SELL", quantity=1, contract=put, limit_price=quote.bid,
            order_ref="filled-one"))
        await asyncio.wait_for(fill_seen.wait(), 20)
        before_cash = (await client.account_values()).total_cash
        before_positions = {(p.contract, p.quantity) for p in await client.positions()}
        before_time = await client.current_time()
        await client.disconnect()
        gw.stop(signal.SIGKILL)
    assert filled.order_ref == "filled-one"
    with running(home) as again:
        client = adapter(again.port, 41)
        await client.connect()
        try:
            working = [o for o in await client.open_orders() if o.request.order_ref == "keep-me"]
            assert len(working) == 1 and working[0].order_id == resting.order_id
            assert (await client.account_values()).total_cash == before_cash
            assert {(p.contract, p.quantity) for p in await client.positions()} == (
                before_positions)
            assert any(f.order_ref == "filled-one" for f in await client.fills())
            assert await client.current_time() >= before_time
        finally:
            await client.disconnect()


def test_a_different_scenario_on_an_existing_world_is_a_named_error(tmp_path: Path) -> None:
    home = tmp_path / "s"
    with running(home):
        pass
    state = home / "paper-world.json"
    stored = state.read_bytes()
    other = tmp_path / "other.json"
    data = json.loads((Path(__file__).parents[2] / "core/data/scenarios/demo.json").read_text())
    data["account"]["cash"] = 12345.0
    other.write_text(json.dumps(data))
    r = putdesk(env_for(home), "paper", "--scenario", str(other))
    assert r.returncode == 2
    assert f"The paper world in {state} was created from the scenario" in r.stderr
    assert f"putdesk paper --reset --scenario {other}" in r.stderr
    assert state.read_bytes() == stored
    # The way out it names works.
    with running(home, "--reset", "--scenario", str(other)) as gw:
        assert gw.proc.poll() is None
    assert json.loads(state.read_text())["sim"]["cash"] == 12345.0


@pytest.mark.parametrize("content", [
    b"{not json", b'{"format": "something else"}', b"\xff\xfe garbage",
    b'{"format": "putdesk-paper-world", "version": 1, "scenario": 3, "sim": {}, "peer": {}}',
    b'{"format": "putdesk-paper-world", "version": 1, "world_time": "2026-11-24T10:00Z",'
    b' "scenario": {"data": {}}, "sim": {}, "peer": {}}'])
def test_a_corrupt_world_is_a_named_error_with_its_path_and_nothing_changes(
        tmp_path: Path, content: bytes) -> None:
    home = tmp_path / "x"
    home.mkdir()
    state = home / "paper-world.json"
    state.write_bytes(content)
    r = putdesk(env_for(home), "paper")
    assert r.returncode == 1
    assert f"Paper world {state} is " in r.stderr and "--reset" in r.stderr
    assert state.read_bytes() == content
    assert not (home / "paper-gateway.json").exists()


async def test_a_read_only_api_gateway_refuses_orders_with_321(tmp_path: Path) -> None:
    with running(tmp_path / "ro", "--read-only-api") as gw:
        client = adapter(gw.port, 51)
        await client.connect()
        try:
            refused = asyncio.Event()

            def on_event(e: object) -> None:
                if isinstance(e, BrokerMessage) and e.code == 321:
                    refused.set()

            client.add_listener(on_event)
            await client.place_order(OrderRequest(
                action="SELL", quantity=1, contract=OptionContract(
                    "KO", date(2026, 12, 18), 67.0), limit_price=50.0, order_ref="ro"))
            await asyncio.wait_for(refused.wait(), 20)
            assert await client.open_orders() == []
        finally:
            await client.disconnect()


def test_a_gateway_whose_data_directory_is_deleted_stops(tmp_path: Path) -> None:
    """No PutDesk process can find it any more (its info file went with the directory):
    it stops instead of serving nobody for ever (as gateways left by temp directories
    did)."""
    import shutil

    home = tmp_path / "gone"
    with running(home) as gw:
        shutil.rmtree(home)
        out = gw.stop(sig=0, timeout=30)  # signal 0: no signal, only wait for it
        assert gw.proc.returncode == 0
        assert f"Paper gateway stopped: its data directory {home}" in out
