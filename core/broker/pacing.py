"""Pacer: keeps every caller together under IBKR's message rate (50/s; ib_async sends at
most 45/s), spacing requests evenly instead of bursting into error 100."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Pacer:
    """At most `rate` requests per second, spaced evenly, across all callers."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate
        self._clock = clock
        self._next = 0.0
        self._lock = asyncio.Lock()
        self.sent = 0

    async def __call__(self, make: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:
            now = self._clock()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
            self.sent += 1
        if wait > 0:
            await asyncio.sleep(wait)
        return await make()
