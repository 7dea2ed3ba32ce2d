"""Pre-trade checks per second, with the product's logging, at 10 and at 1,000 positions
(goal: >= 5,000/s at both, flat in book size).

The demo world's underlyings on the simulator with a book of 10 or 1,000 short puts;
logging set up as the product does it (the file log at LOG_LEVEL, secrets redacted), so
every decision writes its log lines; account health, earnings, VIX, IV rank and the
book snapshot cached as between broker events; the WhatIf round trip excluded
(`whatif=False`: the margin check stops at the Layer 1 estimate). Each opportunity
carries its quote (bid, ask, delta), as a screened candidate does. Nothing sleeps inside
a timed span. The median of 5 rounds is reported, with the range: the machine is shared.

    python -m bench.governor
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

GOAL = 5_000.0
BOOK_SIZES = (10, 1_000)


def _world(positions: int) -> dict[str, Any]:
    """The demo world with `positions` short puts spread over its underlyings."""
    from core.broker.scenario import demo_scenario_path

    data: dict[str, Any] = json.loads(demo_scenario_path().read_text())
    symbols = sorted(data["underlyings"])
    book = []
    for i in range(positions):
        symbol = symbols[i % len(symbols)]
        price = data["underlyings"][symbol]["price"]
        # distinct contracts: strikes stepping down, then later expirations
        strike = round(price * (0.85 - 0.01 * ((i // len(symbols)) % 20)), 2)
        expiration = ["2026-12-18", "2027-01-15", "2027-02-19"][(i // (20 * len(symbols))) % 3]
        book.append({"symbol": symbol, "right": "P", "strike": strike,
                     "expiration": expiration, "quantity": -1, "avg_price": 1.0})
    data["positions"] = book
    data.pop("option_quotes", None)
    data["account"]["cash"] = 10_000_000.0
    return data


async def book_engine(positions: int) -> tuple[Any, Any, Any]:
    """(engine, simulator, world): an opened engine on `_world(positions)`, connected, with
    the product's file log (every decision writes its line) and the position limits
    raised so that the book's size is not itself the answer."""
    from bench.report import production_settings
    from core.broker.scenario import load_scenario
    from core.broker.sim import SimBroker
    from core.clock import ManualClock
    from core.db.session import Database
    from core.engine import Engine
    from core.market.calendar import default_calendar

    settings = production_settings(MAX_POSITIONS="5000", MAX_POSITIONS_PER_SYMBOL="1000")
    url = settings.app.database_url
    assert url is not None
    path = Path(tempfile.mkdtemp(prefix="putdesk-bench-world-")) / "world.json"
    path.write_text(json.dumps(_world(positions)))
    world = load_scenario(path)
    clock = ManualClock(world.now)
    broker = SimBroker(world, clock=clock, calendar=default_calendar())
    engine = Engine(settings, broker, Database(url.get_secret_value()), clock,
                    wall_clock=clock, equity_seed=world.equity_closes())
    await engine.open()
    await broker.connect()
    return engine, broker, world


async def run(positions: int, n: int) -> tuple[float, float, float, int]:
    from core.models import Opportunity

    engine, broker, world = await book_engine(positions)
    governor = engine.governor
    held = {p.contract for p in await broker.positions() if p.contract is not None}
    opportunities = []
    for i, symbol in enumerate(s for s in broker.symbols() if s != "VIX"):
        price = await broker.underlying_price(symbol) or 100.0
        opp = Opportunity(symbol, world.now.date() + timedelta(days=37), round(price * 0.88),
                          None, requested_contracts=1 + i % 5)
        if opp.contract in held:
            continue
        quote = await broker.option_quote(opp.contract)
        opportunities.append(opp.but(premium=quote.mid or 0.5, underlying_price=price,
                                     bid=quote.bid, ask=quote.ask, delta=quote.delta))
    # Warm the caches: account health, earnings (database + memo), VIX, IV rank, the book.
    for opp in opportunities:
        await governor.pre_trade_check(opp, whatif=False)
    assert len((await governor.book()).contracts) == positions

    rates = []
    approved = 0
    for _round in range(5):
        start = time.perf_counter()
        approved = 0
        for i in range(n):
            decision = await governor.pre_trade_check(opportunities[i % len(opportunities)],
                                                      whatif=False)
            approved += decision.approved
        rates.append(n / (time.perf_counter() - start))
    rates.sort()
    await engine.stop()
    return rates[len(rates) // 2], rates[0], rates[-1], approved


def main() -> None:
    from bench.report import Result, report

    n = 10_000
    for positions in BOOK_SIZES:
        median, low, high, approved = asyncio.run(run(positions, n))
        report(Result(f"governor at {positions:,} positions, pre-trade checks (WhatIf "
                      "excluded, 18 checks)",
                      f"median {median:,.0f}/s ({1e6 / median:.0f} µs each), rounds "
                      f"{low:,.0f}-{high:,.0f}/s, {approved:,} of {n:,} approved",
                      f">= {GOAL:,.0f}/s", median >= GOAL))


if __name__ == "__main__":
    main()
