"""A look at the book on a slow link: `monitor.refresh` of 30 short puts on the simulator
with 200 ms added to every request (a distant TWS), with the product's logging.

Each position needs its option quote, its underlying's price and (first time, then kept
for a minute) a what-if of closing it. Printed beside the figure: what the same requests
take one after another, and the floor set by the bounds (QUOTES_AT_ONCE positions
quoted together, MARGIN_WHATIFS_AT_ONCE what-ifs). The second refresh reuses the margins.

    python -m bench.monitor
"""

from __future__ import annotations

import asyncio
import math
import time

POSITIONS = 30
LATENCY = 0.2


async def run() -> tuple[float, float]:
    from bench.governor import book_engine

    engine, broker, _world = await book_engine(POSITIONS)
    broker.faults.latency_seconds = LATENCY
    start = time.perf_counter()
    views = await engine.monitor.refresh(notify=False)
    first = time.perf_counter() - start
    assert len(views) == POSITIONS and all(v.margin is not None for v in views)
    start = time.perf_counter()
    await engine.monitor.refresh(notify=False)
    second = time.perf_counter() - start
    await engine.stop()
    return first, second


def main() -> None:
    from bench.report import Result, report
    from core.monitoring.positions import MARGIN_WHATIFS_AT_ONCE, QUOTES_AT_ONCE

    first, second = asyncio.run(run())
    serial = (2 * POSITIONS + POSITIONS) * LATENCY + LATENCY  # + the positions request
    floor = (2 * math.ceil(POSITIONS / QUOTES_AT_ONCE)
             + math.ceil(POSITIONS / MARGIN_WHATIFS_AT_ONCE) + 1) * LATENCY
    print(f"refresh of {POSITIONS} positions, {LATENCY * 1000:.0f} ms a request: first "
          f"{first:.2f} s (floor {floor:.2f} s at {QUOTES_AT_ONCE} quotes and "
          f"{MARGIN_WHATIFS_AT_ONCE} what-ifs at once; one at a time {serial:.1f} s), "
          f"second {second:.2f} s (margins kept)", flush=True)
    report(Result(f"monitor refresh, {POSITIONS} positions, {LATENCY * 1000:.0f} ms a "
                  "request (first look; margins then kept)",
                  f"{first:.2f} s, then {second:.2f} s (one at a time: {serial:.1f} s; "
                  f"floor at the bounds {floor:.2f} s)", "info (no budget)", None))


if __name__ == "__main__":
    main()
