from datetime import date, datetime

import pytest

from core.clock import NEW_YORK
from core.market.calendar import MarketSession, default_calendar


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("moment", "session", "reason"),
    [
        ("2026-11-24T10:30:00-05:00", MarketSession.REGULAR, "open"),
        ("2026-11-24T09:29:59-05:00", MarketSession.PRE_MARKET, "pre-market"),
        ("2026-11-24T04:00:00-05:00", MarketSession.PRE_MARKET, "pre-market"),
        ("2026-11-24T03:59:00-05:00", MarketSession.CLOSED, "overnight"),
        ("2026-11-24T16:00:00-05:00", MarketSession.AFTER_HOURS, "after hours"),
        ("2026-11-24T20:00:00-05:00", MarketSession.CLOSED, "overnight"),
        ("2026-11-28T11:00:00-05:00", MarketSession.CLOSED, "weekend"),
        ("2026-11-29T11:00:00-05:00", MarketSession.CLOSED, "weekend"),
        ("2026-12-25T11:00:00-05:00", MarketSession.CLOSED, "holiday"),
        ("2026-11-26T11:00:00-05:00", MarketSession.CLOSED, "holiday"),  # Thanksgiving
        ("2026-06-19T11:00:00-04:00", MarketSession.CLOSED, "holiday"),  # Juneteenth
        ("2025-01-09T11:00:00-05:00", MarketSession.CLOSED, "holiday"),  # ad-hoc closure
        # early close: 13:00 on the day after Thanksgiving and on Christmas Eve
        ("2026-11-27T12:59:00-05:00", MarketSession.REGULAR, "early close"),
        ("2026-11-27T13:30:00-05:00", MarketSession.AFTER_HOURS, "after hours"),
        ("2026-11-27T17:00:00-05:00", MarketSession.CLOSED, "overnight"),
        ("2026-12-24T13:00:00-05:00", MarketSession.AFTER_HOURS, "after hours"),
        # first sessions after the DST changes
        ("2026-03-09T09:30:00-04:00", MarketSession.REGULAR, "open"),
        ("2026-11-02T09:30:00-05:00", MarketSession.REGULAR, "open"),
    ],
)
def test_sessions(moment, session, reason):
    info = default_calendar().session_at(at(moment))
    assert (info.session, info.reason) == (session, reason)
    assert info.allows_orders == (session in (MarketSession.REGULAR, MarketSession.PRE_MARKET))


def test_same_instant_in_utc_gives_same_answer():
    ny = default_calendar().session_at(at("2026-11-24T10:30:00-05:00"))
    utc = default_calendar().session_at(at("2026-11-24T15:30:00+00:00"))
    assert ny.session == utc.session == MarketSession.REGULAR


def test_naive_time_is_refused():
    with pytest.raises(ValueError):
        default_calendar().session_at(datetime(2026, 11, 24, 10, 30))


def test_next_open_and_close_over_a_holiday_weekend():
    info = default_calendar().session_at(at("2026-12-24T14:00:00-05:00"))
    assert info.next_open == datetime(2026, 12, 28, 9, 30, tzinfo=NEW_YORK)
    assert info.next_close == datetime(2026, 12, 28, 16, 0, tzinfo=NEW_YORK)
    assert info.session_close == datetime(2026, 12, 24, 13, 0, tzinfo=NEW_YORK)


def test_option_hours_late_close_etfs():
    cal = default_calendar()
    after_close = at("2026-11-24T16:10:00-05:00")
    assert cal.options_trading(after_close, "SPY")
    assert not cal.options_trading(after_close, "AAPL")
    assert not cal.options_trading(at("2026-11-24T16:15:00-05:00"), "SPY")
    assert cal.options_close(date(2026, 11, 27), "QQQ") == datetime(
        2026, 11, 27, 13, 15, tzinfo=NEW_YORK)
    assert not cal.options_trading(at("2026-11-24T09:00:00-05:00"), "SPY")


def test_expiration_close_honours_early_close():
    cal = default_calendar()
    assert cal.expiration_close(date(2026, 12, 24)).hour == 13
    assert cal.expiration_close(date(2026, 12, 18)).hour == 16
