"""Position updates from IBKR: each reqPositions reports the whole book again, so only a
position that changed is news. Before, reading the positions made the adapter say they
changed, the engine looked at the book again (reading the positions), and so on for
ever: ~40 requests a second against IBKR's 50, with nothing changed."""

from __future__ import annotations

import asyncio

from core.broker.base import FillReceived, PositionsChanged
from core.broker.ibkr import POSITIONS_SETTLE_S
from tests.core.broker.test_ibkr_adapter import rig, sell, until

__all__ = ["rig"]


async def test_reading_the_positions_is_no_change_a_fill_is(rig):
    r = await rig()
    for _ in range(3):
        assert await r.broker.positions()
    # Nothing to wait for when nothing happens: the settle delay, three times over.
    await asyncio.sleep(POSITIONS_SETTLE_S * 3)
    assert not [e for e in r.events if isinstance(e, PositionsChanged)]
    bid = (await r.sim.option_quote(r.ko)).bid
    await r.broker.place_order(sell(r.ko, 1, bid, "putdesk:news"))
    await until(lambda: any(isinstance(e, PositionsChanged) for e in r.events))
    changed = [i for i, e in enumerate(r.events) if isinstance(e, PositionsChanged)]
    filled = next(i for i, e in enumerate(r.events) if isinstance(e, FillReceived))
    assert len(changed) == 1 and changed[0] > filled


async def test_after_a_reconnect_the_engine_is_told_to_look_at_the_book_once(rig):
    """What moved while the link was down (here an assignment) comes in the reports made
    while connecting, which are not news: the reconnect itself says look again, once."""
    r = await rig()
    bid = (await r.sim.option_quote(r.ko)).bid
    await r.broker.place_order(sell(r.ko, 2, bid, "putdesk:x"))
    await until(lambda: any(isinstance(e, PositionsChanged) for e in r.events))
    r.peer.drop()
    await until(lambda: not r.broker.connected)
    r.events.clear()
    r.sim.assign_early(r.ko, 1)  # while TWS is out of reach
    await r.broker.connect()
    changed = [e for e in r.events if isinstance(e, PositionsChanged)]
    assert len(changed) == 1 and "reconnected" in changed[0].reason
    assert {p.sec_type: p.quantity for p in await r.broker.positions()
            if p.symbol == "KO"} == {"OPT": -1, "STK": 100}
    await r.broker.positions()
    await asyncio.sleep(POSITIONS_SETTLE_S * 3)  # reading again is still no news
    assert len([e for e in r.events if isinstance(e, PositionsChanged)]) == 1
