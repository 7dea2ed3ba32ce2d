"""Injectable clocks.

Everything that asks "what time is it" takes a Clock, so tests and the simulator can
pin or move time. All clocks return timezone-aware UTC datetimes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware (UTC)."""
        ...


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("clock times must be timezone-aware")
    return moment.astimezone(UTC)


class SystemClock:
    """The machine's wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told: for tests and scripted simulations."""

    def __init__(self, start: datetime) -> None:
        self._now = _as_utc(start)

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = _as_utc(moment)

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("a clock does not run backwards")
        self._now += delta
        return self._now


class ShiftedClock:
    """Starts at a chosen moment and then runs at wall-clock speed.

    The console on a scenario uses it so the demo world starts at the scenario's time
    and still feels live (quotes age, health checks fall due).
    """

    def __init__(self, start: datetime) -> None:
        self._start = _as_utc(start)
        self._origin = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._origin)


def new_york(moment: datetime) -> datetime:
    """The same instant expressed in New York time (the market's clock)."""
    return _as_utc(moment).astimezone(NEW_YORK)
