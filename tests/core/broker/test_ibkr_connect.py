"""The IBKR adapter without TWS: connection failures as an operator sees them, and the
mapping of real ib_async objects (sentinels included). The adapter end to end runs
against the wire-protocol peer in test_ibkr_adapter.py."""

import asyncio
import socket
import time
from datetime import date

import pytest
from ib_async import AccountValue, Contract, OrderState
from ib_async import Position as IBPosition

from core.broker.base import BrokerDisconnected, BrokerError, OptionContract, OrderRequest
from core.broker.ibkr import (
    IbkrBroker,
    describe_code,
    map_account_values,
    map_position,
    map_what_if,
    parse_ib_number,
)
from core.config import load_settings
from tests.factories import T0

SENTINEL = "1.7976931348623157E308"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker(port: int, timeout: float = 1.0) -> IbkrBroker:
    s = load_settings({"PUTDESK_IBKR_PORT": port, "PUTDESK_IBKR_CONNECT_TIMEOUT": timeout})
    return IbkrBroker(s.ibkr)


async def test_nothing_listening_is_a_readable_error_fast():
    b = broker(free_port())
    start = time.monotonic()
    with pytest.raises(BrokerError) as err:
        await b.connect()
    assert time.monotonic() - start < 3
    assert "Cannot reach TWS/IB Gateway at 127.0.0.1:" in str(err.value)
    assert "API enabled" in str(err.value)
    assert not b.connected and b.info().last_error == str(err.value)


@pytest.mark.parametrize("behaviour", ["silent", "close"])
async def test_a_peer_that_does_not_speak_tws_fails_within_the_timeout(behaviour):
    async def handle(reader, writer):
        if behaviour == "close":
            writer.close()
            return
        await asyncio.sleep(10)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        b = broker(port, timeout=1.0)
        start = time.monotonic()
        with pytest.raises(BrokerError) as err:
            await b.connect()
        assert time.monotonic() - start < 4
        assert "127.0.0.1" in str(err.value)
    finally:
        server.close()


async def test_requests_while_disconnected_fail_at_once_with_nothing_sent():
    b = broker(free_port())
    with pytest.raises(BrokerDisconnected):
        await b.account_values()
    with pytest.raises(BrokerDisconnected):
        await b.option_quote(OptionContract("AAPL", date(2026, 12, 18), 200.0))
    with pytest.raises(BrokerDisconnected):
        await b.place_order(OrderRequest("SELL", 1, "r", OptionContract(
            "AAPL", date(2026, 12, 18), 200.0), limit_price=1.0))
    assert b.pacer.sent == 0
    assert b.info().kind == "ibkr" and "127.0.0.1" in b.info().description


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(SENTINEL, None), ("1.7976931348623157e+308", None), ("", None), (None, None),
     ("abc", None), ("nan", None), ("inf", None), ("123.45", 123.45), ("-5", -5.0),
     (12, 12.0), (1.7976931348623157e308, None)],
)
def test_parse_ib_number(raw, expected):
    assert parse_ib_number(raw) == expected


def test_account_values_from_ib_rows():
    rows = [
        AccountValue("DU1", "NetLiquidation", "150000.5", "USD", ""),
        AccountValue("DU1", "AvailableFunds", "120000", "USD", ""),
        AccountValue("DU1", "ExcessLiquidity", SENTINEL, "USD", ""),
        AccountValue("DU1", "InitMarginReq", "30000", "USD", ""),
        AccountValue("DU1", "MaintMarginReq", "25000", "BASE", ""),
        AccountValue("DU1", "EquityWithLoanValue", "150000", "USD", ""),
        AccountValue("DU1", "AccountType", "INDIVIDUAL", "", ""),
        AccountValue("DU2", "NetLiquidation", "1", "USD", ""),
    ]
    values = map_account_values(rows, "DU1", T0)
    assert values.net_liquidation == 150000.5
    assert values.excess_liquidity is None  # unset, never 1.79e308
    assert values.maint_margin_req == 25000.0
    assert values.total_cash is None
    assert values.margin_utilization == pytest.approx(0.2)


def test_positions_from_ib_objects():
    opt = Contract(secType="OPT", symbol="AAPL", lastTradeDateOrContractMonth="20261218",
                   strike=200.0, right="P", multiplier="100")
    stk = Contract(secType="STK", symbol="INTC")
    fut = Contract(secType="FUT", symbol="ES")
    mapped = [map_position(IBPosition("DU1", c, q, cost))
              for c, q, cost in ((opt, -2, 185.0), (stk, 200, 38.0), (fut, 1, 5000.0))]
    option, stock, future = mapped
    assert option.contract == OptionContract("AAPL", date(2026, 12, 18), 200.0, "P")
    assert (option.quantity, option.avg_cost) == (-2, 1.85)  # IBKR avgCost is per contract
    assert (stock.sec_type, stock.quantity, stock.avg_cost) == ("STK", 200, 38.0)
    assert future is None


def test_what_if_state_with_unset_fields():
    state = OrderState(status="PreSubmitted", initMarginBefore="25000",
                       initMarginAfter="29650.5", maintMarginBefore=SENTINEL,
                       maintMarginAfter="", equityWithLoanBefore="150000",
                       equityWithLoanAfter="149998.7", commission=1.3,
                       warningText="Margin after trade close to limit")
    w = map_what_if(state)
    assert w.init_margin_change == pytest.approx(4650.5)
    assert w.maint_margin_before is None and w.maint_margin_after is None
    assert w.commission == 1.3 and "close to limit" in w.warning
    unset = map_what_if(OrderState(commission=1.7976931348623157e308))
    assert unset.commission is None and unset.init_margin_change is None


@pytest.mark.parametrize(
    ("code", "severity", "words"),
    [(1100, "ERROR", "Connectivity between TWS and IBKR lost"),
     (2104, "INFO", "farm connection OK"), (10167, "WARNING", "delayed"),
     (201, "ERROR", "Order rejected"), (326, "ERROR", "Client id already in use"),
     (2119, "INFO", "some farm message"), (9999, "ERROR", "unknown thing")],
)
def test_error_codes_are_named(code, severity, words):
    text = {2119: "some farm message", 9999: "unknown thing"}.get(code, "detail")
    message = describe_code(code, text)
    assert message.severity == severity and words in message.message and message.code == code


def test_order_requests_refuse_ambiguous_shapes():
    contract = OptionContract("AAPL", date(2026, 12, 18), 200.0)
    with pytest.raises(ValueError, match="limit price"):
        OrderRequest("SELL", 1, "pd-1", contract=contract)
    with pytest.raises(ValueError, match="exactly one of a contract, combo legs or a stock"):
        OrderRequest("SELL", 1, "pd-1", limit_price=1.0)
    with pytest.raises(ValueError, match="positive"):
        OrderRequest("SELL", 0, "pd-1", contract=contract, limit_price=1.0)
