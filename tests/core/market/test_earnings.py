import logging
from datetime import date, datetime, timedelta

import pytest
from yfinance.exceptions import YFRateLimitError

from core.clock import NEW_YORK, ManualClock
from core.market.earnings import (
    EarningsService,
    EarningsUnavailable,
    FmpEarnings,
    SimEarnings,
    YFinanceEarnings,
)
from tests.http_server import Reply, http_server

NOW = datetime(2026, 11, 24, 10, 30, tzinfo=NEW_YORK)
TODAY = NOW.date()
EXP = date(2026, 12, 4)  # 10 DTE


class FakeTicker:
    def __init__(self, answer):
        self.answer = answer

    def get_calendar(self):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def yf(answer) -> YFinanceEarnings:
    return YFinanceEarnings(ticker_factory=lambda symbol: FakeTicker(answer))


def service(db, provider, clock=None) -> EarningsService:
    return EarningsService(db, provider, clock or ManualClock(NOW))


# spec 1.3: "earnings 5 days out and DTE 10 -> blocked; 20 days out and DTE 10 -> passes"
@pytest.mark.parametrize(("days_out", "blocked"), [(5, True), (20, False), (10, True),
                                                   (11, False), (0, True)])
async def test_in_dte_window(db, days_out, blocked):
    provider = yf({"Earnings Date": [TODAY + timedelta(days=days_out)]})
    check = await service(db, provider).get_cached_earnings("AAPL", EXP)
    assert check is not None and check.earnings_in_dte is blocked
    assert check.earnings_date == TODAY + timedelta(days=days_out)


async def test_unconfirmed_window_uses_the_earliest_date_and_past_dates_are_ignored(db):
    provider = yf({"Earnings Date": [date(2026, 12, 9), date(2026, 12, 1)],
                   "Earnings Average": 1.2})
    check = await service(db, provider).get_cached_earnings("AAPL", EXP)
    assert check.earnings_date == date(2026, 12, 1) and check.earnings_in_dte
    stale = yf({"Earnings Date": [date(2026, 11, 20)]})  # Yahoo lags after a report
    check = await service(db, stale).get_cached_earnings("MSFT", EXP)
    assert check.earnings_date is None and not check.earnings_in_dte


async def test_fund_without_earnings_is_not_unknown(db):
    check = await service(db, yf({})).get_cached_earnings("SPY", EXP)
    assert check is not None and check.earnings_date is None and not check.earnings_in_dte


@pytest.mark.parametrize("answer", [YFRateLimitError(), ConnectionError("DNS"), {}, "nonsense",
                                    {"Earnings Date": ["soon"]}])
async def test_unavailable_passes_with_the_spec_warning(db, caplog, answer):
    with caplog.at_level(logging.WARNING, logger="putdesk.earnings"):
        check = await service(db, yf(answer)).get_cached_earnings("AAPL", EXP)
    assert check is None
    assert "WARNING: earnings data unavailable for AAPL" in caplog.text


async def test_cached_for_24_hours_in_the_database(db):
    calls = []

    def factory(symbol):
        calls.append(symbol)
        return FakeTicker({"Earnings Date": [date(2026, 12, 1)]})

    clock = ManualClock(NOW)
    svc = service(db, YFinanceEarnings(ticker_factory=factory), clock)
    await svc.get_cached_earnings("AAPL", EXP)
    clock.advance(timedelta(hours=23))
    again = EarningsService(db, YFinanceEarnings(ticker_factory=factory), clock)
    await again.get_cached_earnings("AAPL", EXP)  # another process, same database
    assert calls == ["AAPL"]
    clock.advance(timedelta(hours=2))
    await svc.get_cached_earnings("AAPL", EXP)
    assert calls == ["AAPL", "AAPL"]


async def test_failures_are_not_cached(db):
    answers = [YFRateLimitError(), {"Earnings Date": [date(2026, 12, 1)]}]
    svc = service(db, YFinanceEarnings(ticker_factory=lambda s: FakeTicker(answers.pop(0))))
    assert await svc.get_cached_earnings("AAPL", EXP) is None
    assert (await svc.get_cached_earnings("AAPL", EXP)).earnings_in_dte


async def test_simulator_scenario_provider(db):
    sim = SimEarnings({"NVDA": date(2026, 12, 2)}.get, lambda: ["NVDA", "SPY"])
    svc = service(db, sim)
    assert (await svc.get_cached_earnings("NVDA", EXP)).earnings_in_dte
    assert not (await svc.get_cached_earnings("SPY", EXP)).earnings_in_dte
    assert await svc.get_cached_earnings("ZZZZ", EXP) is None


# --- FMP over a real HTTP server ------------------------------------------------------

FMP_ROWS = [  # recorded shape of /stable/earnings
    {"symbol": "AAPL", "date": "2027-01-28", "epsActual": None, "epsEstimated": 2.61,
     "revenueActual": None, "revenueEstimated": 138e9, "lastUpdated": "2026-11-20"},
    {"symbol": "AAPL", "date": "2026-10-29", "epsActual": 1.85, "epsEstimated": 1.77,
     "revenueActual": 102e9, "revenueEstimated": 101e9, "lastUpdated": "2026-10-30"},
]


async def test_fmp_reads_the_stable_endpoint_with_the_key_in_a_header():
    with http_server({"/stable/earnings": lambda r: Reply(200, FMP_ROWS)}) as server:
        found = await FmpEarnings("k-sentinel", server.url).next_earnings("BRK.B", TODAY)
    assert found == date(2027, 1, 28)
    req = server.requests[0]
    assert req.query == {"symbol": "BRK-B", "limit": "8"}
    assert req.headers["apikey"] == "k-sentinel" and "k-sentinel" not in str(req.query)


@pytest.mark.parametrize(
    ("reply", "message"),
    [(Reply(429, {"Error Message": "Limit Reach"}), "rate limited"),
     (Reply(403, {"Error Message": "Legacy Endpoint"}), "HTTP 403"),
     (Reply(500, "oops"), "HTTP 500"),
     (Reply(200, b"<html>not json"), "not JSON"),
     (Reply(200, {"Error Message": "Invalid API KEY"}), "Invalid API KEY"),
     (Reply(200, []), "no earnings dates"),
     (Reply(200, FMP_ROWS, delay=1.5), "timed out")],
)
async def test_fmp_failures_are_named(reply, message):
    with (http_server({"/stable/earnings": lambda r: reply}) as server,
          pytest.raises(EarningsUnavailable, match=message)):
        await FmpEarnings("k", server.url, timeout=0.5).next_earnings("AAPL", TODAY)


async def test_fmp_down():
    with http_server({}) as server:
        url = server.url
    with pytest.raises(EarningsUnavailable, match="unreachable"):
        await FmpEarnings("k", url).next_earnings("AAPL", TODAY)
