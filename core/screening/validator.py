"""IBKR validation of screened candidates (spec 1.2B): live spread and IV rank.

- Spread: (ask - bid) / bid from a live quote must be <= IBKR_MAX_SPREAD_PCT (0.20).
  A bid of 0 (or none) rejects: nobody would pay for the put.
- IV rank = (current IV - 52-week low) / (52-week high - low) from the broker's daily
  implied-volatility history, >= IBKR_IV_RANK_MIN (0.30). Missing history or current IV:
  a warning and a pass (spec: don't block on data gaps). High == low: rank undefined,
  a warning and a pass, never a division by zero.

All candidates are validated concurrently; every broker request goes through one pacer
so the total stays under IBKR's message rate (50/s; we use IBKR_PACING_MSGS_PER_SEC).
IV history is fetched once per symbol per run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from core.broker.base import Broker, BrokerError, IVPoint
from core.broker.pacing import Pacer
from core.config import ValidationSettings
from core.models import Candidate, Rejection
from core.screening.filters import iv_rank_problem, spread_problem

log = logging.getLogger("putdesk.screening.validator")
T = TypeVar("T")


def iv_rank(current: float, history: list[IVPoint]) -> tuple[float | None, str]:
    """(rank, note). None when undefined; the note says why."""
    values = [p.iv for p in history]
    low, high = min(values), max(values)
    if high - low < 1e-9:
        return None, f"IV rank undefined: 52-week IV high equals low ({high:.1%})"
    rank = (current - low) / (high - low)
    return min(max(rank, 0.0), 1.0), ""


class Validator:
    def __init__(self, broker: Broker, settings: ValidationSettings,
                 pacer: Pacer | None = None) -> None:
        self.broker = broker
        self.settings = settings
        self.pacer = pacer or Pacer(settings.pacing_msgs_per_sec)
        self._history: dict[str, asyncio.Task[list[IVPoint]]] = {}
        self._current_iv: dict[str, asyncio.Task[float | None]] = {}

    def _once(self, cache: dict[str, asyncio.Task[T]], symbol: str,
              make: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        if symbol not in cache:
            cache[symbol] = asyncio.ensure_future(self.pacer(make))
        return cache[symbol]

    async def validate(self, candidates: Iterable[Candidate],
                       progress: Callable[[int, int], None] | None = None,
                       ) -> tuple[list[Candidate], list[Rejection]]:
        items = list(candidates)
        done = 0

        async def one(c: Candidate) -> Candidate | Rejection:
            nonlocal done
            try:
                return await self._check(c)
            finally:
                done += 1
                if progress is not None:
                    progress(done, len(items))

        results = await asyncio.gather(*(one(c) for c in items))
        passed = [r for r in results if isinstance(r, Candidate)]
        rejected = [r for r in results if isinstance(r, Rejection)]
        return passed, rejected

    async def _check(self, c: Candidate) -> Candidate | Rejection:
        s = self.settings
        try:
            quote = await self.pacer(lambda: self.broker.option_quote(c.contract))
        except BrokerError as exc:
            return Rejection.of(c, "validation", f"No live quote: {exc}")
        bid, ask = quote.bid, quote.ask
        spread, problem = spread_problem(bid, ask, s)
        if problem is not None:
            return Rejection.of(c, "validation", problem)
        c = c.but(live_bid=bid, live_ask=ask, spread_pct=spread, option_iv=quote.iv,
                  delta=quote.delta if quote.delta is not None else c.delta)
        try:
            history = await self._once(self._history, c.symbol,
                                       lambda: self.broker.iv_history(c.symbol))
            current = await self._once(self._current_iv, c.symbol,
                                       lambda: self.broker.underlying_iv(c.symbol))
        except BrokerError as exc:
            log.warning("IV history for %s unavailable (%s): passing without IV rank",
                        c.symbol, exc)
            return c.with_warning(f"IV rank unknown: {exc}")
        if not history or current is None:
            what = "52-week IV history" if not history else "current IV"
            log.warning("No %s for %s: IV rank not checked, candidate passes", what, c.symbol)
            return c.with_warning(f"IV rank unknown: no {what} from the broker")
        rank, note = iv_rank(current, history)
        if rank is None:
            log.warning("%s: %s; candidate passes", c.symbol, note)
            return c.but(current_iv=current).with_warning(note)
        problem = iv_rank_problem(rank, s)
        if problem is not None:
            return Rejection.of(c, "validation",
                                f"{problem} "
                                f"(IV {current:.1%}, 52w {min(p.iv for p in history):.1%}-"
                                f"{max(p.iv for p in history):.1%})")
        return c.but(iv_rank=rank, current_iv=current)
