"""Earnings dates for the earnings gate (spec 1.3).

Providers (one interface): the simulator's scenario, yfinance (`Ticker.get_calendar()`,
whose 'Earnings Date' is a list of one or two dates: two = an unconfirmed window, the
earliest is used) and Financial Modeling Prep's stable API (`/stable/earnings?symbol=`,
key sent as a header so it never sits in a URL). Answers are cached in the database for
EARNINGS_CACHE_HOURS (24 h).

Outcomes:
- a date: `earnings_in_dte = today <= date <= expiration` (inclusive, as the spec says);
- a fund (ETF) with no date: no earnings, nothing to block;
- no answer (provider down, rate limited, no data for a stock): None, logged as
  "WARNING: earnings data unavailable" — the candidate passes, prominently flagged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from core.broker.base import Broker
from core.clock import Clock, new_york
from core.config import ConfigError, Settings
from core.db.session import Database
from core.db.tables import EarningsCache
from core.logs import guard_http_logs
from core.market.sectors import canonical_symbol, is_fund

log = logging.getLogger("putdesk.earnings")


class EarningsUnavailable(Exception):
    """The provider could not say (down, rate limited, bad key, no data)."""


@dataclass(frozen=True)
class EarningsCheck:
    symbol: str
    earnings_date: date | None  # None: no upcoming report (a fund, or none scheduled)
    earnings_in_dte: bool
    source: str
    fetched_at: datetime


class EarningsProvider(Protocol):
    name: str

    async def next_earnings(self, symbol: str, today: date) -> date | None:
        """The next report on or after `today`; None if the provider knows of none.
        Raises EarningsUnavailable when it cannot say."""
        ...


def _earliest_upcoming(dates: list[date], today: date) -> date | None:
    upcoming = sorted(d for d in dates if d >= today)
    return upcoming[0] if upcoming else None


class SimEarnings:
    """The simulator's scenario is the source of truth in a simulated world."""

    name = "scenario"

    def __init__(self, lookup: Callable[[str], date | None], known: Callable[[], list[str]]):
        self._lookup = lookup
        self._known = known

    async def next_earnings(self, symbol: str, today: date) -> date | None:
        if symbol not in self._known():
            raise EarningsUnavailable(f"{symbol} is not in the scenario")
        found = self._lookup(symbol)
        return found if found is not None and found >= today else None


class YFinanceEarnings:
    """yfinance 1.x: Ticker.get_calendar() is a dict; 'Earnings Date' a list of dates."""

    name = "yfinance"

    def __init__(self, ticker_factory: Callable[[str], Any] | None = None,
                 timeout: float = 15.0) -> None:
        self._factory = ticker_factory
        self._timeout = timeout

    def _ticker(self, symbol: str) -> Any:
        if self._factory is not None:
            return self._factory(symbol)
        import yfinance

        return yfinance.Ticker(canonical_symbol(symbol).replace(".", "-"))

    def _fetch(self, symbol: str) -> dict[str, Any]:
        try:
            calendar = self._ticker(symbol).get_calendar()
        except Exception as exc:
            kind = type(exc).__name__
            if "RateLimit" in kind:
                raise EarningsUnavailable("yfinance rate limited (HTTP 429)") from None
            raise EarningsUnavailable(f"yfinance failed: {kind}: {exc}") from None
        if not isinstance(calendar, dict):
            raise EarningsUnavailable(f"yfinance returned {type(calendar).__name__}, "
                                      "not a calendar")
        return calendar

    async def next_earnings(self, symbol: str, today: date) -> date | None:
        try:
            calendar = await asyncio.wait_for(asyncio.to_thread(self._fetch, symbol),
                                              self._timeout)
        except TimeoutError:
            raise EarningsUnavailable(f"yfinance timed out after {self._timeout:g} s") from None
        raw = calendar.get("Earnings Date")
        if raw is None:
            if is_fund(symbol):
                return None
            raise EarningsUnavailable("yfinance has no earnings date for this symbol")
        dates = [d.date() if isinstance(d, datetime) else d for d in
                 (raw if isinstance(raw, list) else [raw]) if isinstance(d, date)]
        if not dates:
            raise EarningsUnavailable(f"yfinance earnings date unreadable: {raw!r}")
        return _earliest_upcoming(dates, today)


class FmpEarnings:
    """Financial Modeling Prep stable API (the v3 endpoints return 403 since 2025-08)."""

    name = "fmp"

    def __init__(self, api_key: str, base_url: str = "https://financialmodelingprep.com",
                 timeout: float = 10.0) -> None:
        self._key = api_key
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._client: Any = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> Any:
        """One client per event loop: a new client per symbol reloads the certificate
        bundle (~0.1 s), which made a 75-symbol scan spend 7 s on it."""
        import httpx

        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(timeout=self._timeout)
            self._client_loop = loop
        return self._client

    async def close(self) -> None:
        if self._client is not None and not self._client.is_closed:
            with contextlib.suppress(Exception):
                await self._client.aclose()
        self._client = None

    async def next_earnings(self, symbol: str, today: date) -> date | None:
        import httpx

        guard_http_logs()
        url = f"{self._base}/stable/earnings"
        params = {"symbol": canonical_symbol(symbol).replace(".", "-"), "limit": "8"}
        try:
            response = await self._http().get(url, params=params,
                                              headers={"apikey": self._key})
        except httpx.TimeoutException:
            raise EarningsUnavailable(f"FMP timed out after {self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise EarningsUnavailable(f"FMP unreachable: {type(exc).__name__}") from None
        if response.status_code == 429:
            raise EarningsUnavailable("FMP rate limited (HTTP 429)")
        if response.status_code in (401, 403):
            raise EarningsUnavailable(f"FMP refused the request (HTTP {response.status_code}): "
                                      "check FMP_API_KEY and the plan")
        if response.status_code != 200:
            raise EarningsUnavailable(f"FMP answered HTTP {response.status_code}")
        try:
            rows = response.json()
        except ValueError:
            raise EarningsUnavailable("FMP answered with something that is not JSON") from None
        if not isinstance(rows, list):
            message = rows.get("Error Message") if isinstance(rows, dict) else None
            raise EarningsUnavailable(f"FMP error: {message or 'unexpected response shape'}")
        dates = []
        for row in rows:
            try:
                dates.append(date.fromisoformat(str(row["date"])[:10]))
            except (KeyError, TypeError, ValueError):
                continue
        if not dates:
            if is_fund(symbol):
                return None
            raise EarningsUnavailable("FMP has no earnings dates for this symbol")
        return _earliest_upcoming(dates, today)


def make_provider(settings: Settings, broker: Broker) -> EarningsProvider:
    """EARNINGS_PROVIDER: auto = the scenario on the simulator, yfinance on IBKR."""
    kind = settings.earnings.provider
    if kind == "auto":
        kind = "scenario" if broker.info().kind == "sim" else "yfinance"
    if kind == "scenario":
        lookup = getattr(broker, "earnings_date", None)
        known = getattr(broker, "earnings_symbols", None)
        if lookup is None or known is None:
            raise ConfigError("EARNINGS_PROVIDER='scenario' needs PUTDESK_BROKER=sim")
        return SimEarnings(lookup, known)
    if kind == "fmp":
        if settings.earnings.fmp_api_key is None:
            raise ConfigError("EARNINGS_PROVIDER='fmp' needs FMP_API_KEY")
        return FmpEarnings(settings.earnings.fmp_api_key.get_secret_value(),
                           settings.earnings.fmp_api_url, settings.earnings.timeout_seconds)
    return YFinanceEarnings(timeout=settings.earnings.timeout_seconds)


class EarningsService:
    """get_cached_earnings(): the provider's answer through a 24 h database cache."""

    def __init__(self, db: Database, provider: EarningsProvider, clock: Clock,
                 cache_hours: float = 24.0) -> None:
        self.db = db
        self.provider = provider
        self.clock = clock
        self.ttl = timedelta(hours=cache_hours)
        # The database row is the cache shared across processes; this copy only spares a
        # query per check while the row is fresh (the governor runs thousands a second).
        self._memo: dict[str, EarningsCache] = {}

    async def close(self) -> None:
        """Release the provider's connections (an HTTP client), if it holds any."""
        close = getattr(self.provider, "close", None)
        if close is not None:
            await close()

    def _fresh(self, row: EarningsCache | None) -> EarningsCache | None:
        if row is None or self.clock.now() - row.fetched_at > self.ttl:
            return None
        return row

    def _cached(self, symbol: str) -> EarningsCache | None:
        with self.db.session() as session:
            row = session.get(EarningsCache, symbol)
        row = self._fresh(row)
        if row is not None:
            self._memo[symbol] = row
        return row

    def _store(self, symbol: str, next_date: date | None) -> EarningsCache:
        row = EarningsCache(symbol=symbol, next_date=next_date, source=self.provider.name,
                            fetched_at=self.clock.now())
        with self.db.session() as session:
            session.merge(row)
        self._memo[symbol] = row
        return row

    async def get_cached_earnings(self, symbol: str, expiration: date) -> EarningsCheck | None:
        symbol = canonical_symbol(symbol)
        today = new_york(self.clock.now()).date()
        row = self._fresh(self._memo.get(symbol))
        if row is None:
            row = await asyncio.to_thread(self._cached, symbol)
        if row is None:
            try:
                next_date = await self.provider.next_earnings(symbol, today)
            except EarningsUnavailable as exc:
                log.warning("WARNING: earnings data unavailable for %s (%s): passing without "
                            "an earnings check", symbol, exc)
                return None
            row = await asyncio.to_thread(self._store, symbol, next_date)
        found = row.next_date if row.next_date and row.next_date >= today else None
        in_dte = found is not None and today <= found <= expiration
        return EarningsCheck(symbol, found, in_dte, row.source, row.fetched_at)
