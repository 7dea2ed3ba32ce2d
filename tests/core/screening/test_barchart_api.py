"""The Barchart API scanner against a real HTTP server on 127.0.0.1 serving responses
of the recorded shape (getOptionsScreener), including failures."""

import logging
from datetime import date

import pytest

from core.config import load_settings
from core.logs import setup_logging
from core.screening.barchart_api import BarchartApiError, scan_api
from tests.http_server import Reply, http_server

TODAY = date(2026, 11, 24)
KEY = "bc-key-sentinel"
ROW = {"underlyingSymbol": "AAPL", "instrumentType": "stocks", "type": "Put",
       "strike": 200, "expirationDate": "2026-12-18", "lastPrice": 230.0,
       "optionPrice": 1.5, "bid": 1.45, "ask": 1.55, "delta": -0.14, "volume": 812,
       "openInterest": "12,345", "volatility": 0.31, "tradeTime": "2026-11-24T10:12:00"}


def settings(url: str, **extra):
    return load_settings({"BARCHART_API_KEY": KEY, "BARCHART_API_URL": url, **extra})


def route(pages: dict[str, list[list[dict]]]):
    def answer(req):
        batches = pages.get(req.query["instrumentType"], [])
        page = int(req.query["page"])
        results = batches[page - 1] if page <= len(batches) else []
        return Reply(200, {"status": {"code": 200, "message": "Success."}, "results": results})
    return answer


async def test_scan_normalises_rows_and_sends_the_configured_filters(tmp_path):
    etf = ROW | {"underlyingSymbol": "SPY", "strike": 600, "lastPrice": 668.0,
                 "openInterest": 900, "delta": 0.08}
    bad = ROW | {"expirationDate": "soon"}
    pages = {"stocks": [[ROW, bad]], "etfs": [[etf]]}
    log_file = tmp_path / "putdesk.log"
    with http_server({"/getOptionsScreener.json": route(pages)}) as server:
        configured = settings(server.url, PUTDESK_LOG_FILE=str(log_file),
                              PUTDESK_LOG_LEVEL="DEBUG")
        setup_logging(configured)  # the application's own logging, at its most verbose
        try:
            result = await scan_api(configured, TODAY)
        finally:
            for h in [h for h in logging.getLogger().handlers if getattr(h, "_putdesk", 0)]:
                logging.getLogger().removeHandler(h)
    aapl, spy = result.accepted
    assert (aapl.symbol, aapl.strike, aapl.bid, aapl.open_interest) == ("AAPL", 200, 1.45, 12345)
    assert aapl.dte == 24 and aapl.otm_pct == pytest.approx(30 / 230)
    assert spy.delta == -0.08 and aapl.raw_iv == 0.31 and aapl.source == "api"
    assert result.rejected[0].stage == "parse" and "API row 2" in result.rejected[0].reason
    q = server.requests[0].query
    # spec 1.2C: the API call sends minDTE=7 by default
    assert (q["minDTE"], q["maxDTE"], q["optionType"]) == ("7", "45", "put")
    assert (q["minDelta"], q["maxDelta"]) == ("-0.3", "-0.05")
    assert q["apikey"] == KEY
    text = log_file.read_text()
    assert "Barchart API: 3 rows, 2 candidates, 1 unreadable" in text
    assert KEY not in text  # never logged, even at DEBUG


async def test_dte_minimum_override_reaches_the_request():
    with http_server({"/getOptionsScreener.json": route({})}) as server:
        await scan_api(settings(server.url, BARCHART_DTE_MIN=0), TODAY)
    assert server.requests[0].query["minDTE"] == "0"


async def test_percent_volatility_is_detected():
    pages = {"stocks": [[ROW | {"volatility": 31.0}, ROW | {"volatility": 45.5}]]}
    with http_server({"/getOptionsScreener.json": route(pages)}) as server:
        result = await scan_api(settings(server.url), TODAY)
    assert [c.raw_iv for c in result.accepted] == [0.31, 0.455]
    assert any("percent" in w for w in result.warnings)


async def test_pages_are_followed():
    full = [ROW | {"strike": 150 + i * 0.5} for i in range(500)]
    with http_server({"/getOptionsScreener.json": route({"stocks": [full, [ROW]]})}) as server:
        result = await scan_api(settings(server.url), TODAY)
    assert len(result.accepted) == 501
    assert [r.query["page"] for r in server.requests if r.query["instrumentType"] == "stocks"
            ] == ["1", "2"]


@pytest.mark.parametrize("body", [{"status": {"code": 204, "message": "No Content"},
                                   "results": None},
                                  {"status": {"code": 200}, "results": []}])
async def test_no_results(body):
    with http_server({"/getOptionsScreener.json": lambda r: Reply(200, body)}) as server:
        result = await scan_api(settings(server.url), TODAY)
    assert result.accepted == [] and "no results" in result.warnings[-1]


@pytest.mark.parametrize(
    ("reply", "message"),
    [(Reply(403, {"status": {"code": 403}}), "HTTP 403"),
     (Reply(401, ""), "HTTP 401"),
     (Reply(429, ""), "rate limit"),
     (Reply(502, "bad gateway"), "HTTP 502"),
     (Reply(200, b"{garbled"), "not JSON"),
     (Reply(200, [1, 2]), "envelope"),
     (Reply(200, {"status": {"code": 500, "message": "Internal"}}), "status 500"),
     (Reply(200, {"status": {"code": 200}, "results": "x"}), "not a list")],
)
async def test_service_errors_are_named_and_never_carry_the_key(reply, message):
    with (http_server({"/getOptionsScreener.json": lambda r: reply}) as server,
          pytest.raises(BarchartApiError, match=message) as err):
        await scan_api(settings(server.url), TODAY)
    assert KEY not in str(err.value) and err.value.exit_code == 1


async def test_timeout():
    import httpx

    with http_server({"/getOptionsScreener.json": lambda r: Reply(200, {}, delay=1.0)}
                     ) as server:
        async with httpx.AsyncClient(timeout=0.2) as client:
            with pytest.raises(BarchartApiError, match="did not answer in time"):
                await scan_api(settings(server.url), TODAY, client)


async def test_missing_key_is_a_configuration_error():
    with pytest.raises(BarchartApiError, match="BARCHART_API_KEY is not set") as err:
        await scan_api(load_settings(), TODAY)
    assert err.value.exit_code == 2
