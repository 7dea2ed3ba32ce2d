"""US equity market sessions on exchange_calendars XNYS.

exchange_calendars knows holidays, early closes and ad-hoc closures but only the
regular session, so the extended-hours edges are ours: PRE_MARKET 04:00-open,
AFTER_HOURS close-20:00 (17:00 on early-close days), CLOSED otherwise.
Options trade only in REGULAR; a short list of broad ETFs trades to close + 15 min.

Building the XNYS calendar imports pandas and costs ~0.7 s, which an operator halting
from a second terminal would wait for. So its sessions (day, open, close) are built once
and kept in a small JSON file in the user cache directory (PUTDESK_CACHE_DIR to move it),
named by the years it covers and the exchange_calendars version; every later process
reads that file and answers from sorted lists, without pandas. A file that cannot be
read or written only costs the rebuild.
"""

from __future__ import annotations

import bisect
import enum
import functools
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from core.clock import NEW_YORK

log = logging.getLogger("putdesk.calendar")
CACHE_VERSION = 1

PRE_MARKET_START = time(4, 0)
AFTER_HOURS_END = time(20, 0)
AFTER_HOURS_END_EARLY_CLOSE = time(17, 0)
#: Option classes that trade until 16:15 ET (13:15 on early closes).
LATE_CLOSE_OPTIONS = frozenset(
    {
        "SPY", "QQQ", "IWM", "DIA", "EEM", "EFA", "FXI", "IYR", "KBE", "KRE", "LQD", "MDY", "OEF",
        "TLT", "UNG", "UUP", "UVXY", "VXX", "XHB", "XLB", "XLE", "XLF", "XLI", "XLK", "XLP", "XLU",
        "XLV", "XLY", "XME", "XRT",
    }
)


class MarketSession(enum.StrEnum):
    REGULAR = "REGULAR"
    PRE_MARKET = "PRE_MARKET"
    AFTER_HOURS = "AFTER_HOURS"
    CLOSED = "CLOSED"


@dataclass(frozen=True)
class SessionInfo:
    at: datetime
    session: MarketSession
    reason: str
    session_open: datetime | None  # today's regular open (NY), None if no session today
    session_close: datetime | None
    next_open: datetime
    next_close: datetime

    @property
    def allows_orders(self) -> bool:
        """Spec 3.4B: orders may be submitted in REGULAR and PRE_MARKET."""
        return self.session in (MarketSession.REGULAR, MarketSession.PRE_MARKET)

    def as_dict(self) -> dict[str, Any]:
        def iso(d: datetime | None) -> str | None:
            return d.isoformat() if d else None

        return {
            "at": self.at.isoformat(),
            "session": self.session.value,
            "reason": self.reason,
            "session_open": iso(self.session_open),
            "session_close": iso(self.session_close),
            "next_open": iso(self.next_open),
            "next_close": iso(self.next_close),
        }


class CalendarOutOfRange(ValueError):
    """A day or time outside the sessions the calendar covers."""


@dataclass(frozen=True)
class _Sessions:
    days: list[date]
    opens: list[float]  # UTC epoch seconds, one per day
    closes: list[float]

    @functools.cached_property
    def index(self) -> dict[date, int]:
        return {d: i for i, d in enumerate(self.days)}


def _cache_dir() -> Path:
    configured = os.environ.get("PUTDESK_CACHE_DIR")
    if configured:
        return Path(configured)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("putdesk", appauthor=False))


class MarketCalendar:
    """XNYS sessions, from the on-disk cache when it is there (see the module doc)."""

    def __init__(self, years_ahead: int = 3, cache_dir: Path | None = None) -> None:
        self._years_ahead = years_ahead
        self._cache_dir = cache_dir

    def _span(self) -> tuple[str, str]:
        today = date.today()  # noqa: DTZ011 - calendar bounds only; a day either way is harmless
        return f"{today.year - 2}-01-01", f"{today.year + self._years_ahead}-12-31"

    @functools.cached_property
    def _sessions(self) -> _Sessions:
        from importlib.metadata import version

        start, end = self._span()
        name = f"xnys-{start}-{end}-xcals{version('exchange_calendars')}-v{CACHE_VERSION}.json"
        path = (self._cache_dir or _cache_dir()) / name
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return _Sessions([date.fromisoformat(d) for d in raw["days"]], raw["opens"],
                             raw["closes"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        sessions = self._build(start, end)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"days": [d.isoformat() for d in sessions.days],
                                       "opens": sessions.opens, "closes": sessions.closes}),
                           encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("market calendar not cached (%s): rebuilt in every process", exc)
        return sessions

    @staticmethod
    def _build(start: str, end: str) -> _Sessions:
        import exchange_calendars as xcals  # deferred: heavy import (pandas)

        cal = xcals.get_calendar("XNYS", start=start, end=end)
        opens = [t.timestamp() for t in cal.schedule["open"]]
        closes = [t.timestamp() for t in cal.schedule["close"]]
        days = [d.date() for d in cal.schedule.index]
        return _Sessions(days, opens, closes)

    def _out_of_range(self, what: object) -> CalendarOutOfRange:
        first, last = self.bounds
        return CalendarOutOfRange(f"{what} is outside the market calendar ({first} to {last})")

    @property
    def bounds(self) -> tuple[date, date]:
        """The first and last session the calendar knows; asking about a day outside
        them raises CalendarOutOfRange."""
        days = self._sessions.days
        return days[0], days[-1]

    def _check(self, day: date) -> None:
        days = self._sessions.days
        if not days[0] <= day <= days[-1]:
            raise self._out_of_range(day)

    def is_session(self, day: date) -> bool:
        self._check(day)
        return day in self._sessions.index

    def open_close(self, day: date) -> tuple[datetime, datetime] | None:
        self._check(day)
        i = self._sessions.index.get(day)
        if i is None:
            return None
        return (datetime.fromtimestamp(self._sessions.opens[i], UTC).astimezone(NEW_YORK),
                datetime.fromtimestamp(self._sessions.closes[i], UTC).astimezone(NEW_YORK))

    def session_at(self, moment: datetime) -> SessionInfo:
        ny = moment.astimezone(NEW_YORK) if moment.tzinfo else None
        if ny is None:
            raise ValueError("market calendar needs a timezone-aware time")
        day = ny.date()
        oc = self.open_close(day)
        if oc is None:
            reason = "weekend" if day.weekday() >= 5 else "holiday"
            session = MarketSession.CLOSED
            sess_open = sess_close = None
        else:
            sess_open, sess_close = oc
            pre_start = datetime.combine(day, PRE_MARKET_START, NEW_YORK)
            early = sess_close.time() < time(16, 0)
            post_end = datetime.combine(
                day, AFTER_HOURS_END_EARLY_CLOSE if early else AFTER_HOURS_END, NEW_YORK
            )
            if sess_open <= ny < sess_close:
                session, reason = MarketSession.REGULAR, "early close" if early else "open"
            elif pre_start <= ny < sess_open:
                session, reason = MarketSession.PRE_MARKET, "pre-market"
            elif sess_close <= ny < post_end:
                session, reason = MarketSession.AFTER_HOURS, "after hours"
            else:
                session, reason = MarketSession.CLOSED, "overnight"
        next_open, next_close = self._next_open_close(ny)
        return SessionInfo(ny, session, reason, sess_open, sess_close, next_open, next_close)

    def _next_open_close(self, ny: datetime) -> tuple[datetime, datetime]:
        """The first open and the first close after `ny` (strictly)."""
        at = ny.timestamp()
        s = self._sessions
        i, j = bisect.bisect_right(s.opens, at), bisect.bisect_right(s.closes, at)
        if i >= len(s.opens) or j >= len(s.closes) or at < s.opens[0] - 86_400 * 7:
            raise self._out_of_range(ny.isoformat())
        return (datetime.fromtimestamp(s.opens[i], UTC).astimezone(NEW_YORK),
                datetime.fromtimestamp(s.closes[j], UTC).astimezone(NEW_YORK))

    def options_close(self, day: date, symbol: str) -> datetime | None:
        """When options on `symbol` stop trading on `day` (None: not a session)."""
        oc = self.open_close(day)
        if oc is None:
            return None
        close = oc[1]
        return close + timedelta(minutes=15) if symbol.upper() in LATE_CLOSE_OPTIONS else close

    def options_trading(self, moment: datetime, symbol: str) -> bool:
        """Can an option on `symbol` trade (fill) at this moment?"""
        ny = moment.astimezone(NEW_YORK)
        oc = self.open_close(ny.date())
        if oc is None:
            return False
        close = self.options_close(ny.date(), symbol)
        assert close is not None
        return oc[0] <= ny < close

    def expiration_close(self, expiration: date) -> datetime:
        """The moment an option expiring on `expiration` stops trading (16:00 ET, or
        the early close), used for time to expiry. Falls back to 16:00 on non-sessions."""
        oc = self.open_close(expiration)
        if oc is None:
            return datetime.combine(expiration, time(16, 0), NEW_YORK)
        return oc[1]

    def previous_session(self, day: date) -> date:
        """`day` if it is a session, else the session before it."""
        self._check(day)
        days = self._sessions.days
        return days[bisect.bisect_right(days, day) - 1]


@functools.cache
def default_calendar() -> MarketCalendar:
    return MarketCalendar()
