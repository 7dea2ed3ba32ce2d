"""Barchart options-screener CSV exports -> Candidates.

Barchart's columns depend on the view the user saved, so columns are found by header
name through an alias table, never by position (facts in shared/notes/data-formats.md §1):

- a name may repeat (`Ask`, `Bid`): occurrences before the contract columns (Exp Date,
  Strike, Type) describe the underlying, later ones the option;
- values carry `%`, `+`, thousands commas (`"1,160.00"`), and `N/A` / `unch` / blank for
  missing (None, never 0);
- dates come as ISO, M/D/YYYY or MM/DD/YY; delta is positive for puts on the strategy
  screeners and negative on the generic one (normalised to -|delta|);
- the last line is a footer "Downloaded from Barchart.com as of MM-DD-YYYY hh:mmam CDT",
  quoted or padded with commas; its time flags a stale file;
- a BOM and CRLF line endings occur.

Required: Symbol, Exp Date, Strike, Type, the option's Bid, and an underlying price
(Price~, Price or Last~). A file without one of them is refused naming it; a bad row is
reported with its line number and reason and the rest are processed. Calls are skipped
with a reason (PutDesk sells puts). DTE and OTM% are recomputed from `today`.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from core.models import Candidate, Rejection

CHICAGO = ZoneInfo("America/Chicago")
MISSING = {"", "n/a", "na", "unch", "--", "-"}
CONTRACT_COLUMNS = {"exp date", "strike", "type"}

#: canonical field -> header names (lower case) that carry it, first match wins
ALIASES: dict[str, tuple[str, ...]] = {
    "symbol": ("symbol",),
    "underlying_price": ("price~", "price", "last~"),
    "expiration": ("exp date", "expiration", "expiration date"),
    "dte": ("dte",),
    "strike": ("strike",),
    "type": ("type",),
    "moneyness": ("moneyness",),
    "bid": ("bid",),
    "ask": ("ask",),
    "mid": ("mid", "midpoint"),
    "last": ("last", "latest"),
    "volume": ("volume",),
    "open_interest": ("open int", "open interest"),
    "iv": ("iv", "imp vol", "volatility"),
    "iv_rank": ("iv rank",),
    "delta": ("delta",),
}
#: underlying fields that may appear before the contract columns (repeated names)
UNDERLYING_ALIASES: dict[str, tuple[str, ...]] = {"und_bid": ("bid",), "und_ask": ("ask",)}
REQUIRED = ("symbol", "expiration", "strike", "type", "bid")
PERCENT_FIELDS = {"moneyness", "iv", "iv_rank"}
FOOTER = re.compile(r"^\s*\"?downloaded from barchart\.com", re.IGNORECASE)
FOOTER_TIME = re.compile(r"as of (\d{2})-(\d{2})-(\d{4}) (\d{1,2}):(\d{2})\s*(am|pm)",
                         re.IGNORECASE)


class BarchartCsvError(Exception):
    """The file cannot be used at all (no header, a required column missing ...)."""


@dataclass(frozen=True)
class RowIssue:
    line: int
    reason: str
    symbol: str = ""


@dataclass
class CsvScan:
    candidates: list[Candidate] = field(default_factory=list)
    errors: list[RowIssue] = field(default_factory=list)  # rows that could not be read
    skipped: list[RowIssue] = field(default_factory=list)  # rows read but not wanted (calls)
    warnings: list[str] = field(default_factory=list)  # about the file as a whole
    snapshot_time: datetime | None = None
    columns: dict[str, str] = field(default_factory=dict)  # canonical -> header used

    def rejections(self) -> list[Rejection]:
        return [Rejection(i.symbol, None, None, "parse", i.reason, i.line)
                for i in [*self.errors, *self.skipped]]


def _number(text: str, percent: bool = False) -> float | None:
    cleaned = text.strip().replace(",", "").replace("$", "")
    if cleaned.lower() in MISSING:
        return None
    is_pct = cleaned.endswith("%")
    cleaned = cleaned.rstrip("%").lstrip("+")
    value = float(cleaned)  # ValueError names the text
    if not math.isfinite(value):  # nan, inf, 1e999
        raise ValueError(f"not a finite number: {text!r}")
    return value / 100.0 if (is_pct or percent) else value


def _date(text: str) -> date:
    value = text.strip()
    for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y"):
        try:
            return datetime.strptime(value, fmt).date()  # noqa: DTZ007 - a date
        except ValueError:
            continue
    raise ValueError(f"unreadable date {value!r}")


def _footer_time(cells: list[str]) -> datetime | None:
    m = FOOTER_TIME.search(",".join(cells))
    if not m:
        return None
    month, day, year, hour, minute, half = m.groups()
    h = int(hour) % 12 + (12 if half.lower() == "pm" else 0)
    try:
        return datetime(int(year), int(month), int(day), h, int(minute), tzinfo=CHICAGO)
    except ValueError:  # 13-45-2025: no time rather than a wrong one
        return None


def _map_columns(header: list[str]) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    contract_at = min((i for i, n in enumerate(names) if n in CONTRACT_COLUMNS), default=None)
    if contract_at is None:
        raise BarchartCsvError("missing required columns: Exp Date, Strike, Type "
                               "(is this a Barchart options-screener export?)")
    index: dict[str, int] = {}
    for canonical, aliases in UNDERLYING_ALIASES.items():
        for i in range(contract_at):
            if names[i] in aliases:
                index[canonical] = i
    for canonical, aliases in ALIASES.items():
        for alias in aliases:
            hits = [i for i, n in enumerate(names) if n == alias]
            option_hits = [i for i in hits if i >= contract_at or canonical in
                           ("symbol", "underlying_price") or alias.endswith("~")]
            if canonical in ("bid", "ask"):
                option_hits = [i for i in hits if i > contract_at]
            if len(option_hits) > 1:
                raise BarchartCsvError(f"column {header[option_hits[0]].strip()!r} appears "
                                       "more than once after the contract columns; cannot "
                                       "tell which is the option's")
            if option_hits:
                index[canonical] = option_hits[0]
                break
    missing = [c for c in REQUIRED if c not in index]
    if "underlying_price" not in index and not {"und_bid", "und_ask"} <= index.keys():
        missing.append("underlying_price")
    if missing:
        labels = {"symbol": "Symbol", "expiration": "Exp Date", "strike": "Strike",
                  "type": "Type", "underlying_price": "Price~ (or Price, Last~)",
                  "bid": "Bid (the option's; a Bid before Exp Date/Strike/Type is the "
                         "underlying's)"}
        raise BarchartCsvError("missing required column(s): "
                               + "; ".join(labels.get(m, m) for m in missing))
    return index


def parse_barchart_csv(data: str | bytes, *, today: date, now: datetime | None = None,
                       stale_hours: float = 24.0) -> CsvScan:
    """Parse an export. `today` (New York) recomputes DTE; `now` flags a stale file."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise BarchartCsvError(f"not UTF-8 text (byte {exc.start}); is it a CSV export?") from None
    rows = _records(text)
    blank = 0  # lines before the header, so the rows keep their line numbers
    while rows and isinstance(rows[0], list) and not any(c.strip() for c in rows[0]):
        rows.pop(0)
        blank += 1
    if not rows:
        raise BarchartCsvError("the file is empty")
    header = rows[0]
    if isinstance(header, csv.Error):
        raise BarchartCsvError(f"unreadable header: {header}")
    index = _map_columns(header)
    scan = CsvScan(columns={k: header[i].strip() for k, i in index.items()})
    for line, cells in enumerate(rows[1:], start=2 + blank):
        scan_record(scan, line, cells, index, header, today)
    finish(scan, now, stale_hours)
    return scan


def scan_record(scan: CsvScan, line: int, cells: list[str] | csv.Error, index: dict[str, int],
                header: list[str], today: date) -> None:
    """One record of the file into `scan`: a candidate, an error, a skipped call, the
    footer's time, or nothing (a blank row)."""
    if isinstance(cells, csv.Error):
        scan.errors.append(RowIssue(line, f"unreadable row: {cells}"))
        return
    if cells and FOOTER.match(cells[0]):
        scan.snapshot_time = _footer_time(cells)
        return
    if not any(c.strip() for c in cells):
        return
    symbol = cells[index["symbol"]].strip().upper() if len(cells) > index["symbol"] else ""
    try:
        row = _row(cells, index, header)
    except _Skip as skip:
        scan.skipped.append(RowIssue(line, str(skip), symbol))
        return
    except (ValueError, IndexError) as exc:
        scan.errors.append(RowIssue(line, str(exc), symbol))
        return
    scan.candidates.append(_candidate(row, today, line))


def finish(scan: CsvScan, now: datetime | None, stale_hours: float) -> None:
    """The file-level warnings, once every record is in."""
    if scan.snapshot_time is None:
        scan.warnings.append("no 'Downloaded from Barchart.com' footer with a readable time: "
                             "the file's age is unknown")
    elif now is not None and now - scan.snapshot_time > timedelta(hours=stale_hours):
        age = (now - scan.snapshot_time).total_seconds() / 3600
        scan.warnings.append(f"stale file: downloaded {age:.0f} h ago "
                             f"({scan.snapshot_time:%Y-%m-%d %H:%M %Z}); prices and Greeks "
                             "in it are old, live quotes decide")


def _records(text: str) -> list[list[str] | csv.Error]:
    """The CSV records; one that cannot be read (a field over the csv module's size
    limit) is kept as its error, so the rows after it keep their numbers."""
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[list[str] | csv.Error] = []
    while True:
        try:
            records.append(next(reader))
        except StopIteration:
            return records
        except csv.Error as exc:
            records.append(exc)


class _Skip(Exception):
    pass


def _row(cells: list[str], index: dict[str, int], header: list[str]) -> dict[str, object]:
    width = len(header)
    if len(cells) < width:
        raise ValueError(f"row has {len(cells)} cells, the header has {width}: "
                         f"no {header[len(cells)].strip()!r} and after")
    if len(cells) > width:  # the values may have shifted: none can be trusted
        raise ValueError(f"row has {len(cells)} cells, the header has {width}: cells after "
                         f"{header[-1].strip()!r} (an unquoted comma in a number?)")
    out: dict[str, object] = {}
    for canonical, i in index.items():
        raw = cells[i]
        column = header[i].strip()
        try:
            if canonical == "symbol":
                value: object = raw.strip().upper()
                if not value:
                    raise ValueError("empty")
            elif canonical == "type":
                value = raw.strip().lower()
                if value.startswith("c"):
                    raise _Skip("call option skipped: PutDesk sells puts only")
                if not value.startswith("p"):
                    raise ValueError(f"unknown option type {raw.strip()!r}")
            elif canonical == "expiration":
                value = _date(raw)
            elif canonical in ("volume", "open_interest", "dte"):
                number = _number(raw)
                value = None if number is None else int(number)
            else:
                value = _number(raw, percent=canonical in PERCENT_FIELDS)
        except _Skip:
            raise
        except ValueError as exc:
            raise ValueError(f"column {column!r}: {exc}") from None
        out[canonical] = value
    if out.get("underlying_price") is None:
        und_bid, und_ask = out.get("und_bid"), out.get("und_ask")
        if isinstance(und_bid, float) and isinstance(und_ask, float) and und_bid > 0:
            out["underlying_price"] = (und_bid + und_ask) / 2
    price, strike, bid = out.get("underlying_price"), out.get("strike"), out.get("bid")

    def col(canonical: str) -> str:
        return repr(header[index[canonical]].strip()) if canonical in index else "'Bid'/'Ask'"

    if not isinstance(price, float) or price <= 0:
        raise ValueError(f"column {col('underlying_price')}: no usable underlying price "
                         f"(got {price})")
    if not isinstance(strike, float) or strike <= 0:
        raise ValueError(f"column {col('strike')}: no usable strike (got {strike})")
    if bid is None:
        raise ValueError(f"column {col('bid')}: no option bid (N/A): a sale's premium is "
                         "unknown")
    if isinstance(bid, float) and bid < 0:
        raise ValueError(f"column {col('bid')}: negative bid {bid}")
    return out


def _candidate(row: dict[str, object], today: date, line: int) -> Candidate:
    def f(name: str) -> float | None:
        v = row.get(name)
        return v if isinstance(v, float) else None

    def i(name: str) -> int | None:
        v = row.get(name)
        return v if isinstance(v, int) else None

    price, strike = f("underlying_price"), f("strike")
    assert price is not None and strike is not None
    expiration = row["expiration"]
    assert isinstance(expiration, date)
    delta = f("delta")
    otm = (price - strike) / price
    candidate = Candidate(
        symbol=str(row["symbol"]), expiration=expiration, strike=strike,
        underlying_price=price, dte=(expiration - today).days, otm_pct=otm,
        bid=f("bid"), ask=f("ask"), mid=f("mid"), last=f("last"), volume=i("volume"),
        open_interest=i("open_interest"), raw_iv=f("iv"), source_iv_rank=f("iv_rank"),
        delta=-abs(delta) if delta is not None else None, source="csv", source_row=line)
    moneyness = f("moneyness")
    if moneyness is not None and abs(otm + moneyness) > 0.01:
        candidate = candidate.with_warning(
            f"OTM% {otm:.1%} disagrees with the file's Moneyness {moneyness:+.2%}")
    return candidate


def read_barchart_csv(path: Path, *, today: date, now: datetime | None = None,
                      stale_hours: float = 24.0) -> CsvScan:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BarchartCsvError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return parse_barchart_csv(data, today=today, now=now, stale_hours=stale_hours)
    except UnicodeDecodeError:
        raise BarchartCsvError(f"{path} is not UTF-8 text (is it a CSV export?)") from None
