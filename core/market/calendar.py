"""US equity market sessions on exchange_calendars XNYS.

exchange_calendars knows holidays, early closes and ad-hoc closures but only the
regular session, so the extended-hours edges are ours: PRE_MARKET 04:00-open,
AFTER_HOURS close-20:00 (17:00 on early-close days), CLOSED otherwise.
Options trade only in REGULAR; a short list of broad ETFs trades to close + 15 min.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from core.clock import NEW_YORK

if TYPE_CHECKING:
    import pandas as pd

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


class MarketCalendar:
    """XNYS sessions. Build once and reuse: building the calendar costs ~0.1-0.4 s."""

    def __init__(self, years_ahead: int = 3) -> None:
        self._years_ahead = years_ahead

    @functools.cached_property
    def _cal(self) -> Any:
        import exchange_calendars as xcals  # deferred: heavy import (pandas)

        today = date.today()  # noqa: DTZ011 - calendar bounds only; a day either way is harmless
        start = f"{today.year - 2}-01-01"
        end = f"{today.year + self._years_ahead}-12-31"
        return xcals.get_calendar("XNYS", start=start, end=end)

    def _ts(self, moment: datetime) -> pd.Timestamp:
        import pandas as pd

        if moment.tzinfo is None:
            raise ValueError("market calendar needs a timezone-aware time")
        return pd.Timestamp(moment)

    @property
    def bounds(self) -> tuple[date, date]:
        """The first and last session the calendar knows; asking about a day outside
        them raises (exchange_calendars' DateOutOfBounds)."""
        return self._cal.first_session.date(), self._cal.last_session.date()

    def is_session(self, day: date) -> bool:
        return bool(self._cal.is_session(day.isoformat()))

    def open_close(self, day: date) -> tuple[datetime, datetime] | None:
        if not self.is_session(day):
            return None
        o, c = self._cal.session_open_close(day.isoformat())
        return o.to_pydatetime().astimezone(NEW_YORK), c.to_pydatetime().astimezone(NEW_YORK)

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
        ts = self._ts(ny)
        nxt_open = self._cal.next_open(ts).to_pydatetime().astimezone(NEW_YORK)
        nxt_close = self._cal.next_close(ts).to_pydatetime().astimezone(NEW_YORK)
        return nxt_open, nxt_close

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
        import pandas as pd

        return pd.Timestamp(self._cal.date_to_session(day.isoformat(), "previous")).date()  # type: ignore[no-any-return]


@functools.cache
def default_calendar() -> MarketCalendar:
    return MarketCalendar()
