"""Barchart OnDemand getOptionsScreener -> the same Candidates as the CSV path.

Transport facts (shared/notes/data-formats.md §2): the key is a query parameter, so no
URL is ever logged or put in a message (httpx's own request log is silenced and the log
redacts the key anyway); the envelope is {"status": {"code", "message"}, "results"};
status.code 204 or empty/null results mean no results; HTTP 401/403 a bad key or plan,
429 rate limited. `openInterest` may arrive as a string; `volatility` as a fraction or a
percent (a batch with any value above 3 is percent). Server-side filters are a first cut
only: the pipeline re-applies every filter.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import httpx

from core.config import Settings
from core.logs import guard_http_logs
from core.models import Candidate, Rejection
from core.screening.pipeline import ScanResult

log = logging.getLogger("putdesk.screening.barchart_api")
MAX_PAGES = 20
PAGE_SIZE = 500


class BarchartApiError(Exception):
    """The scan cannot run. exit_code 2 for configuration, 1 for the service."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _params(settings: Settings, instrument: str, page: int) -> dict[str, str]:
    s = settings.screener
    return {
        "instrumentType": instrument, "optionType": "put",
        "minDTE": str(s.dte_min), "maxDTE": str(s.dte_max),
        "minDelta": f"{-s.delta_max:g}", "maxDelta": f"{-s.delta_min:g}",
        "minVolume": str(s.min_volume), "minOpenInterest": str(s.min_open_interest),
        "fields": "delta,bid,ask,volume,openInterest,volatility,tradeTime",
        "limit": str(PAGE_SIZE), "page": str(page),
    }


async def fetch_results(settings: Settings, client: httpx.AsyncClient | None = None
                        ) -> tuple[list[dict[str, Any]], list[str]]:
    """All result rows for stocks and ETFs, following pages. Raises BarchartApiError."""
    key = settings.screener.api_key
    if key is None or not key.get_secret_value():
        raise BarchartApiError("BARCHART_API_KEY is not set", exit_code=2)
    url = settings.screener.api_url.rstrip("/") + "/getOptionsScreener.json"
    guard_http_logs()  # httpx logs each request URL, and the key is in its query
    own = client is None
    http = client or httpx.AsyncClient(timeout=20.0)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    try:
        for instrument in ("stocks", "etfs"):
            for page in range(1, MAX_PAGES + 1):
                params = _params(settings, instrument, page) | {"apikey": key.get_secret_value()}
                batch = await _get(http, url, params)
                if not batch:
                    break
                rows += batch
                if len(batch) < PAGE_SIZE:
                    break
            else:
                notes.append(f"{instrument}: stopped after {MAX_PAGES} pages")
    finally:
        if own:
            await http.aclose()
    if not rows:
        notes.append("Barchart returned no results for these filters")
    return rows, notes


async def _get(http: httpx.AsyncClient, url: str, params: dict[str, str]
               ) -> list[dict[str, Any]]:
    try:
        response = await http.get(url, params=params)
    except httpx.TimeoutException:
        raise BarchartApiError("Barchart did not answer in time") from None
    except httpx.HTTPError as exc:
        raise BarchartApiError(f"Barchart unreachable ({type(exc).__name__})") from None
    if response.status_code in (401, 403):
        raise BarchartApiError(f"Barchart refused the request (HTTP {response.status_code}): "
                               "check BARCHART_API_KEY and that the plan includes "
                               "getOptionsScreener")
    if response.status_code == 429:
        raise BarchartApiError("Barchart rate limit reached (HTTP 429); try again later")
    if response.status_code != 200:
        raise BarchartApiError(f"Barchart answered HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise BarchartApiError("Barchart answered with something that is not JSON") from None
    if not isinstance(body, dict):
        raise BarchartApiError("Barchart's answer has no status/results envelope")
    status = body.get("status") or {}
    code = status.get("code") if isinstance(status, dict) else None
    if code == 204:
        return []
    if code not in (None, 200):
        message = status.get("message", "") if isinstance(status, dict) else ""
        raise BarchartApiError(f"Barchart status {code}: {message}".strip())
    results = body.get("results")
    if results is None:
        return []
    if not isinstance(results, list):
        raise BarchartApiError("Barchart's results are not a list")
    return [r for r in results if isinstance(r, dict)]


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.replace(",", "").rstrip("%")
    return float(value)


def to_candidates(rows: list[dict[str, Any]], today: date
                  ) -> tuple[list[Candidate], list[Rejection], list[str]]:
    """Normalise result rows; a bad row becomes a Rejection naming the field."""
    notes: list[str] = []
    vols = [v for v in (_safe(r.get("volatility")) for r in rows) if v is not None]
    percent_iv = any(v > 3 for v in vols)
    if percent_iv:
        notes.append("Barchart volatility is in percent in this batch; converted to fractions")
    candidates: list[Candidate] = []
    rejected: list[Rejection] = []
    for n, row in enumerate(rows, start=1):
        symbol = str(row.get("underlyingSymbol") or row.get("underlying_symbol") or "").upper()
        try:
            kind = str(row.get("type", "")).lower()
            if not kind.startswith("p"):
                raise ValueError(f"type {row.get('type')!r} is not a put")
            expiration = date.fromisoformat(str(row["expirationDate"])[:10])
            strike, price = _num(row["strike"]), _num(row["lastPrice"])
            if not symbol or strike is None or strike <= 0 or price is None or price <= 0:
                raise ValueError("missing symbol, strike or underlying price (lastPrice)")
            bid = _num(row.get("bid"))
            if bid is None:
                raise ValueError("no bid")
            delta, iv = _num(row.get("delta")), _num(row.get("volatility"))
            oi, volume = _num(row.get("openInterest")), _num(row.get("volume"))
        except (KeyError, TypeError, ValueError) as exc:
            reason = f"API row {n}: {exc if not isinstance(exc, KeyError) else f'no {exc}'}"
            rejected.append(Rejection(symbol or "?", None, None, "parse", reason, n))
            continue
        candidates.append(Candidate(
            symbol=symbol, expiration=expiration, strike=strike, underlying_price=price,
            dte=(expiration - today).days, otm_pct=(price - strike) / price, bid=bid,
            ask=_num(row.get("ask")), volume=None if volume is None else int(volume),
            open_interest=None if oi is None else int(oi),
            raw_iv=None if iv is None else (iv / 100 if percent_iv else iv),
            delta=None if delta is None else -abs(delta), source="api", source_row=n))
    return candidates, rejected, notes


def _safe(value: Any) -> float | None:
    try:
        return _num(value)
    except (TypeError, ValueError):
        return None


async def scan_api(settings: Settings, today: date,
                   client: httpx.AsyncClient | None = None) -> ScanResult:
    rows, notes = await fetch_results(settings, client)
    candidates, rejected, more = to_candidates(rows, today)
    log.info("Barchart API: %d rows, %d candidates, %d unreadable", len(rows), len(candidates),
             len(rejected))
    return ScanResult(accepted=candidates, rejected=rejected, warnings=notes + more,
                      source="Barchart API")
