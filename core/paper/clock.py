"""World time on the paper gateway.

The gateway's world runs `speed` times faster than the wall clock and jumps over the
hours the market is shut. Every PutDesk process that talks to it reads the same anchor
(world time at a wall time, and the speed) from the gateway's file, so all of them show
one date and one time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_SPEED = 100_000.0


@dataclass(frozen=True)
class Anchor:
    """World time `world` was current at wall time `wall` (UTC epoch seconds)."""

    world: datetime
    wall: float
    speed: float

    def at(self, wall: float) -> datetime:
        return self.world + timedelta(seconds=(wall - self.wall) * self.speed)

    def as_dict(self) -> dict[str, object]:
        return {"world": self.world.isoformat(), "wall": self.wall, "speed": self.speed}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Anchor:
        world = datetime.fromisoformat(str(data["world"]))
        if world.tzinfo is None:
            raise ValueError("world time without a UTC offset")
        return cls(world.astimezone(UTC), float(str(data["wall"])), float(str(data["speed"])))


class WorldClock:
    """The gateway's own clock: `speed` x the wall clock from `start`; `jump()` moves it
    forward (over a night or a weekend)."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        if not 0 < speed <= MAX_SPEED:
            raise ValueError(f"speed must be above 0 and at most {MAX_SPEED:g}")
        if start.tzinfo is None:
            raise ValueError("clock times must be timezone-aware")
        self._anchor = Anchor(start.astimezone(UTC), time.time(), speed)
        self._mono = time.monotonic()  # world time never runs backwards with the wall clock

    @property
    def speed(self) -> float:
        return self._anchor.speed

    @property
    def anchor(self) -> Anchor:
        return self._anchor

    def now(self) -> datetime:
        elapsed = time.monotonic() - self._mono
        return self._anchor.world + timedelta(seconds=elapsed * self._anchor.speed)

    def jump(self, moment: datetime) -> None:
        """Continue from `moment` (only forward)."""
        if moment > self.now():
            self._anchor = Anchor(moment.astimezone(UTC), time.time(), self._anchor.speed)
            self._mono = time.monotonic()
