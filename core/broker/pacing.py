"""Pacing: keeps every caller together under IBKR's limits instead of bursting into them.

Pacer: the message rate (50/s; ib_async sends at most 45/s), spaced evenly.
HistoryPacer: historical data (error 162 beyond 60 requests in any 10 minutes)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
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

    async def wait(self) -> None:
        """Until this caller's slot comes."""
        async with self._lock:
            now = self._clock()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
            self.sent += 1
        if wait > 0:
            await asyncio.sleep(wait)

    async def __call__(self, make: Callable[[], Awaitable[T]]) -> T:
        await self.wait()
        return await make()


class HistoryPacer:
    """At most `limit` historical-data requests in any `window` seconds (IBKR: 60 in 10
    minutes). A caller that would wait longer than `max_wait` gets HistoryPacingError at
    once: a scan must not stall for minutes, and the caller treats the data as unknown."""

    def __init__(self, limit: int = 60, window: float = 600.0, max_wait: float = 15.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.max_wait = limit, window, max_wait
        self._clock = clock
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = self._clock()
            while self._sent and self._sent[0] <= now - self.window:
                self._sent.popleft()
            wait = 0.0
            if len(self._sent) >= self.limit:
                wait = self._sent[0] + self.window - now
                if wait > self.max_wait:
                    raise HistoryPacingError(
                        f"historical data pacing: {len(self._sent)} requests in the last "
                        f"{self.window / 60:g} minutes; next slot in {wait:.0f} s")
            self._sent.append(now + wait)
        if wait > 0:
            await asyncio.sleep(wait)


class HistoryPacingError(Exception):
    """Waiting for a historical-data slot would take too long."""
