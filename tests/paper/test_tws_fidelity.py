"""The gateway behaves as TWS does where PutDesk depends on it (issue 15, item 4).

Pacing (error 100) is proven in test_peer.py; the 158 openOrder layout, every
account-summary tag and the whole session with IBKR's own client in
test_ibapi_conformance.py."""

from __future__ import annotations

import asyncio
import socket
import struct
from datetime import date

import pytest
from ib_async import IB, LimitOrder

from core.broker.base import OptionContract
from core.broker.sim import SimBroker
from core.paper import TwsPeer
from core.paper.accounts import ACCOUNT_TAGS
from core.paper.codec import encode, split_fields
from core.paper.server import MAX_SERVER_VERSION, MIN_SERVER_VERSION
from tests.paper.test_peer import connect, errors_of, ib_option, qualified, until

KO_FAR = OptionContract("KO", date(2026, 12, 18), 67.0)


async def resting_sell(ib: IB, ref: str) -> object:
    option = await qualified(ib, ib_option(KO_FAR))
    trade = ib.placeOrder(option, LimitOrder("SELL", 1, 50.0, orderRef=ref))  # far away
    await until(lambda: trade.orderStatus.status == "Submitted")
    return trade


async def test_req_open_orders_is_the_callers_and_req_all_open_orders_everyones(
        peer: TwsPeer, ib: IB) -> None:
    other = await connect(peer, client_id=2)
    try:
        await resting_sell(ib, "mine")
        await resting_sell(other, "theirs")
        mine = await ib.reqOpenOrdersAsync()
        assert [t.order.orderRef for t in mine] == ["mine"]
        everyone = await ib.reqAllOpenOrdersAsync()
        assert sorted(t.order.orderRef for t in everyone) == ["mine", "theirs"]
        assert {t.order.clientId for t in everyone} == {1, 2}
    finally:
        other.disconnect()


async def test_account_summary_refreshes_on_its_cadence_updates_follow_a_fill_at_once(
        peer: TwsPeer, ib: IB, sim: SimBroker) -> None:
    summary = {v.tag: v.value for v in await ib.accountSummaryAsync()}
    cash_before = summary["TotalCashValue"]
    option = await qualified(ib, ib_option(KO_FAR))
    q = await sim.option_quote(KO_FAR)
    trade = ib.placeOrder(option, LimitOrder("SELL", 1, q.bid, orderRef="fill-now"))
    await until(trade.isDone)

    def update(tag: str) -> str:
        return next(v.value for v in ib.accountValues() if v.tag == tag and v.currency == "USD")

    # reqAccountUpdates: at once.
    await until(lambda: update("TotalCashValue") != cash_before)

    def summarised(tag: str) -> str:  # ib_async's copy of the summary subscription
        return next(v.value for v in ib.wrapper.acctSummary.values() if v.tag == tag)

    # The summary subscription: not before its 3-minute refresh.
    await ib.reqCurrentTimeAsync()  # a round trip: anything sent with the fill has arrived
    assert summarised("TotalCashValue") == cash_before
    assert peer.summary_refresh_seconds == 180.0
    await peer.refresh_summaries()
    await until(lambda: summarised("TotalCashValue") == update("TotalCashValue"))


async def test_account_summary_answers_every_tag_ibkr_documents(ib: IB) -> None:
    got = {v.tag: v for v in await ib.accountSummaryAsync()}
    assert set(got) == set(ACCOUNT_TAGS) and len(ACCOUNT_TAGS) == 29
    assert float(got["FullMaintMarginReq"].value) == float(got["MaintMarginReq"].value) > 0
    assert got["AccountType"].value == "INDIVIDUAL" and got["AccountType"].currency == ""
    assert 0 < float(got["Cushion"].value) < 1
    assert got["NetLiquidation"].currency == "USD"


async def test_an_order_on_a_read_only_api_gets_321_and_never_reaches_the_book(
        peer: TwsPeer, ib: IB, sim: SimBroker) -> None:
    peer.read_only_api = True
    seen = errors_of(ib)
    option = await qualified(ib, ib_option(KO_FAR))
    trade = ib.placeOrder(option, LimitOrder("SELL", 1, 50.0, orderRef="refused"))
    await until(lambda: any(code == 321 for _r, code, _t in seen))
    [(req_id, _code, text)] = [e for e in seen if e[1] == 321]
    assert req_id == trade.order.orderId and "Read-Only" in text
    assert await sim.open_orders() == [] and await sim.fills() == []


async def test_a_cancel_passes_through_pending_cancel(peer: TwsPeer, ib: IB) -> None:
    """The gateway's own orderStatus messages, as they arrive (ib_async also sets
    PendingCancel by itself on cancelOrder, so its Trade cannot tell)."""
    trade = await resting_sell(ib, "raw-cancel")
    seen: list[str] = []
    ib.client.decoder.handlers[3] = _spy(ib.client.decoder.handlers[3], seen)
    ib.cancelOrder(trade.order)
    await until(lambda: "Cancelled" in seen)
    assert seen.index("PendingCancel") < seen.index("Cancelled")


def _spy(handler, seen: list[str]):  # type: ignore[no-untyped-def]
    def wrapped(fields: list[str]) -> None:
        seen.append(fields[2])  # orderStatus: msgId, orderId, status, ...
        handler(fields)
    return wrapped


# --- server version negotiation ---------------------------------------------------------------


def _hello(port: int, offer: str) -> int | None:
    """The server version the gateway answers to `offer` ('v100..200'); None if it
    hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        payload = offer.encode()
        s.sendall(b"API\0" + struct.pack(">I", len(payload)) + payload)
        head = s.recv(4)
        if len(head) < 4:
            return None
        (size,) = struct.unpack(">I", head)
        body = b""
        while len(body) < size:
            body += s.recv(size - len(body))
        return int(split_fields(body)[0])


@pytest.mark.parametrize(("offer", "answer"), [
    ("v100..200", MAX_SERVER_VERSION),  # capped at what the gateway speaks
    ("v157..178", 178),
    ("v157..158", 158),  # the client's top when it is below the gateway's
    (f"v{MAX_SERVER_VERSION + 1}..200", None),  # nothing in common: hang up
    ("v100..156", None),  # below what the gateway speaks
])
async def test_the_server_version_is_negotiated_from_the_clients_range(
        peer: TwsPeer, offer: str, answer: int | None) -> None:
    got = await asyncio.to_thread(_hello, peer.port, offer)
    assert got == answer
    assert MIN_SERVER_VERSION == 157


def test_a_gateway_cannot_be_told_to_speak_a_version_it_does_not(sim: SimBroker) -> None:
    with pytest.raises(ValueError, match="speaks server versions 157 to 178"):
        TwsPeer(sim, server_version=190)
    assert encode([1])  # the codec is importable from the product package
