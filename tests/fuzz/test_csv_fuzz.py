"""Barchart CSV exports: generated files mixing good rows with damaged ones, and real
exports with damage added. No exception escapes; every good row comes out with its
values; every bad row is an error naming its line and the field; nothing else."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.screening.barchart_csv import (
    MISSING,
    BarchartCsvError,
    CsvScan,
    parse_barchart_csv,
    read_barchart_csv,
)
from tests.fuzz import FUZZ, budget

TODAY = date(2025, 8, 25)
DATA = Path(__file__).parents[1] / "data"

# --- column kinds ------------------------------------------------------------------------

#: optional option columns -> how their text reads ("int", "pct", "num") and the
#: Candidate attribute they land in (None: read but not kept)
OPTIONAL: dict[str, tuple[str, str | None]] = {
    "DTE": ("int", None), "Moneyness": ("pct", None), "Ask": ("num", "ask"),
    "Mid": ("num", "mid"), "Last": ("num", "last"), "Volume": ("int", "volume"),
    "Open Int": ("int", "open_interest"), "IV": ("pct", "raw_iv"),
    "IV Rank": ("pct", "source_iv_rank"), "Delta": ("num", "delta"),
}
#: columns PutDesk does not read: anything may be in them
UNKNOWN = ["BE (Bid)", "%BE (Bid)", "Return", "Ann Rtn", "Profit Prob", "%Chg~", "Time",
           "Exp B4 Earnings"]
PRICE_HEADERS = ["Price~", "Price", "Last~"]

MISSING_TOKENS = ["", "N/A", "n/a", "unch", "--", "-", " NA "]
NONFINITE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e400", "inf%", "+nan"]
JUNK = ["abc", "1.2.3", "—", "€5", "12abc", "N/A2", "☃", "1 2", "0x10", "%", "+", "--5",
        "１２ｘ", "'7'", "5\x00", "\t?"]


def _not_a_number(text: str) -> bool:
    cleaned = text.strip().replace(",", "").replace("$", "")
    if cleaned.lower() in MISSING:
        return False
    try:
        value = float(cleaned.rstrip("%").lstrip("+"))
    except ValueError:
        return True
    return not math.isfinite(value)


#: arbitrary text that is not a number (nor a missing marker); no line breaks, so a
#: record is one line and line numbers are plain
junk_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"),
                    min_size=1, max_size=12).filter(_not_a_number)
bad_number = st.one_of(st.sampled_from(JUNK + NONFINITE), junk_text)


# --- one generated file -----------------------------------------------------------------


@dataclass
class Case:
    header: list[str]
    records: list[list[str] | None] = field(default_factory=list)  # None: a blank line
    good: dict[int, dict[str, Any]] = field(default_factory=dict)  # line -> expected values
    bad: dict[int, str] = field(default_factory=dict)  # line -> field the error must name
    calls: set[int] = field(default_factory=set)  # line -> skipped call


def _num_text(draw: st.DrawFn, cents: int, grouped: bool) -> str:
    text = f"{cents / 100:,.2f}" if grouped else f"{cents / 100:.2f}"
    return draw(st.sampled_from([text, text.rstrip("0").rstrip(".") or "0"]))


@st.composite
def price_cell(draw: st.DrawFn, low: int = 1, high: int = 500_000) -> tuple[str, float]:
    cents = draw(st.integers(low, high))
    text = _num_text(draw, cents, grouped=draw(st.booleans()))
    return text, float(text.replace(",", ""))


@st.composite
def optional_cell(draw: st.DrawFn, kind: str) -> tuple[str, float | int | None]:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from(MISSING_TOKENS)), None
    if kind == "int":
        n = draw(st.integers(0, 5_000_000))
        text = f"{n:,}" if draw(st.booleans()) else str(n)
        return text, n
    if kind == "pct":
        basis = draw(st.integers(-99_999, 99_999))
        text = f"{basis / 100:+.2f}%" if draw(st.booleans()) else f"{basis / 100:.2f}%"
        return text, basis / 10_000
    value = draw(st.integers(-1_000_000, 1_000_000)) / 1_000_000
    return f"{value:.6f}", value


@st.composite
def good_row(draw: st.DrawFn, base: list[str], kinds: dict[str, str]) -> tuple[
        list[str], dict[str, Any], bool]:
    """A row the parser must accept: its cells, the Candidate values, whether a call."""
    cells: dict[str, str] = {}
    want: dict[str, Any] = {}
    symbol = draw(st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcxyz.Ö"),
                          min_size=1, max_size=6).filter(lambda s: s.strip(".")))
    cells["symbol"] = draw(st.sampled_from([symbol, f" {symbol} "]))
    want["symbol"] = symbol.upper()
    expiration = draw(st.dates(date(2024, 1, 1), date(2030, 12, 31)))
    cells["exp"] = draw(st.sampled_from([
        expiration.isoformat(), f"{expiration.month}/{expiration.day}/{expiration.year}",
        expiration.strftime("%m/%d/%y"), expiration.strftime("%m/%d/%Y")]))
    want["expiration"] = expiration
    want["dte"] = (expiration - TODAY).days
    cells["strike"], want["strike"] = draw(price_cell())
    is_call = draw(st.integers(0, 9)) == 0
    cells["type"] = draw(st.sampled_from(["Call", "call", "C"] if is_call
                                         else ["Put", "put", "P", "PUT", " Put "]))
    bid_cents = draw(st.integers(0, 100_000))
    cells["bid"] = _num_text(draw, bid_cents, grouped=draw(st.booleans()))
    want["bid"] = float(cells["bid"].replace(",", ""))
    if "und" in kinds.values():
        ub, ua = draw(price_cell()), draw(price_cell())
        cells["und_bid"], cells["und_ask"] = ub[0], ua[0]
        want["underlying_price"] = (ub[1] + ua[1]) / 2
    else:
        cells["price"], want["underlying_price"] = draw(price_cell())
    option_columns = [b for i, b in enumerate(base)
                      if kinds.get(f"{i}") not in ("und_bid", "und_ask")]
    for name, (kind, attr) in OPTIONAL.items():
        if name in option_columns:
            text, value = draw(optional_cell(kind))
            cells[name] = text
            if attr == "delta":
                want[attr] = None if value is None else -abs(float(value))
            elif attr is not None:
                want[attr] = value
    row = []
    for i, name in enumerate(base):
        key = kinds.get(f"{i}", name)
        row.append(cells[key] if key in cells else draw(st.one_of(
            st.sampled_from(["", "N/A", "1.3%", "Buy", "15:36 ET"]), junk_text)))
    return row, want, is_call


def _kinds(header: list[str], und: bool) -> dict[str, str]:
    """Column position (as text) -> which generated cell goes there; the header's names
    as generated, before their case and padding were changed."""
    canonical = {"symbol": "symbol", "exp date": "exp", "strike": "strike", "type": "type",
                 "bid": "bid", "price~": "price", "price": "price", "last~": "price"}
    kinds: dict[str, str] = {}
    contract_at = min(i for i, h in enumerate(header)
                      if h.strip().lower() in ("exp date", "strike", "type"))
    for i, h in enumerate(header):
        name = h.strip().lower()
        if und and name in ("bid", "ask") and i < contract_at:
            kinds[f"{i}"] = "und_bid" if name == "bid" else "und_ask"
        elif name in canonical:
            kinds[f"{i}"] = canonical[name]
    if und:
        kinds["und"] = "und"
    return kinds


@st.composite
def headers(draw: st.DrawFn) -> tuple[list[str], list[str], bool]:
    """A header the parser must accept: the required columns in any order the format
    allows (the underlying's columns before Exp Date/Strike/Type), optional and unknown
    columns, any case and padding. True when the underlying's price is its Bid/Ask."""
    und = draw(st.integers(0, 5)) == 0
    before = ["Symbol", *draw(st.lists(st.sampled_from(UNKNOWN), max_size=2))]
    if und:
        before += ["Bid", "Ask"]
    else:
        before.append(draw(st.sampled_from(PRICE_HEADERS)))
    contract = draw(st.permutations(["Exp Date", "Strike", "Type"]))
    optional = draw(st.lists(st.sampled_from(sorted(OPTIONAL)), unique=True, max_size=6))
    after = ["Bid", *contract[1:], *optional,
             *draw(st.lists(st.sampled_from(UNKNOWN), max_size=3))]  # duplicates allowed
    if und:
        after = [h for h in after if h != "Price~"]
    before = draw(st.permutations(before))
    after = draw(st.permutations(after))
    header = [*before, contract[0], *after]
    styled = [draw(st.sampled_from([h, h.upper(), h.lower(), f" {h} "])) for h in header]
    return header, styled, und


def _damage(draw: st.DrawFn, row: list[str], base: list[str], header: list[str],
            kinds: dict[str, str]) -> tuple[list[str], str] | None:
    """One flaw that makes the row unusable; the row and the field the error names."""
    target = draw(st.sampled_from(["cell", "cell", "cell", "short", "long"]))
    if target == "short":
        # keep a non-blank cell: a row of blank cells is a blank line, skipped
        nonblank = [i for i, c in enumerate(row) if c.strip()]
        if not nonblank or nonblank[0] + 1 > len(row) - 1:
            return None
        keep = draw(st.integers(nonblank[0] + 1, len(row) - 1))
        return row[:keep], header[keep].strip()
    if target == "long":
        cut = draw(st.integers(0, len(row)))
        extra = draw(st.sampled_from(["234", "x", "", "5,"]))
        return [*row[:cut], extra, *row[cut:]], "cells"
    i = draw(st.integers(0, len(header) - 1))
    kind = kinds.get(f"{i}")
    name = header[i].strip()
    if kind == "symbol":
        bad = draw(st.sampled_from(["", "   "]))
    elif kind == "exp":
        bad = draw(st.sampled_from(["", "banana", "2025-13-01", "2025-02-30", "31/12/2025",
                                    "2025/12/31", "12/31/2025x", "N/A", "20251219"]))
    elif kind == "type":
        bad = draw(st.sampled_from(["", "X", "Straddle", "?", "—", "N/A"]))
    elif kind in ("strike", "price"):
        bad = draw(st.one_of(st.sampled_from([*MISSING_TOKENS, "0", "-5", "-0.01", "-1,234"]),
                             bad_number))
    elif kind == "bid":
        bad = draw(st.one_of(st.sampled_from([*MISSING_TOKENS, "-0.05", "-3"]), bad_number))
    elif kind == "und_bid":  # no usable price without the underlying's bid
        bad = draw(st.one_of(st.sampled_from([*MISSING_TOKENS, "0", "-5"]), bad_number))
    elif kind == "und_ask":
        bad = draw(st.one_of(st.sampled_from(MISSING_TOKENS[:3]), bad_number))
    elif base[i] in OPTIONAL:
        bad = draw(bad_number)
    else:
        return None  # a column PutDesk does not read: nothing to break
    return [*row[:i], bad, *row[i + 1:]], name


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[str | bytes, Case]:
    base, header, und = draw(headers())
    kinds = _kinds(base, und)
    case = Case(header)
    line = 1 + draw(st.integers(0, 2))  # blank lines before the header
    lines_out = ["" for _ in range(line - 1)]
    n_rows = draw(st.integers(0, 12))
    for _ in range(n_rows):
        line += 1
        if draw(st.integers(0, 9)) == 0:
            case.records.append(None)
            continue
        row, want, is_call = draw(good_row(base, kinds))
        damaged = None if is_call or draw(st.integers(0, 2)) else _damage(draw, row, base,
                                                                          header, kinds)
        if damaged is not None:
            row, name = damaged
            case.bad[line] = name
        elif is_call:
            case.calls.add(line)
        else:
            case.good[line] = want
        case.records.append(row)
    # the last line: a footer, nothing, or a good row cut short mid-line
    ending = draw(st.sampled_from(["footer", "footer", "none", "truncated"]))
    quote_all = draw(st.booleans())
    crlf = draw(st.sampled_from(["\n", "\r\n", "mixed"]))
    out = io.StringIO()
    for record in [header, *case.records]:
        eol = draw(st.sampled_from(["\n", "\r\n"])) if crlf == "mixed" else crlf
        if record is None:
            out.write(eol)
            continue
        writer = csv.writer(out, lineterminator=eol,
                            quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
        writer.writerow(record)
    text = "\n".join(lines_out) + ("\n" if lines_out else "") + out.getvalue()
    if ending == "footer":
        text += draw(st.sampled_from([
            '"Downloaded from Barchart.com as of 08-24-2025 08:15pm CDT"\n',
            "Downloaded from Barchart.com as of 03-24-2025 03:26pm CDT" + "," * 5 + "\r\n",
            "DOWNLOADED FROM BARCHART.COM as of 13-45-2025 99:99pm CDT\n"]))
    elif ending == "truncated":
        row, _want, _call = draw(good_row(base, kinds))
        last = io.StringIO()
        csv.writer(last, lineterminator="", quoting=csv.QUOTE_MINIMAL).writerow(row)
        body = last.getvalue()
        first = next((i for i, ch in enumerate(body) if ch.isalnum()), None)
        # The separator before the last cell (body.rfind(",") may find one inside the
        # last cell's quotes: cut there, the row keeps every cell and none is missing).
        head = io.StringIO()
        csv.writer(head, lineterminator="", quoting=csv.QUOTE_MINIMAL).writerow(row[:-1])
        last_comma = len(head.getvalue())
        if len(row) < 2 or body[last_comma:last_comma + 1] != ",":
            last_comma = -1  # ([""] is written '""' alone, but empty among others)
        if first is not None and first < last_comma:
            # cut before the last separator: at least one cell is missing
            cut = draw(st.integers(first + 1, last_comma))
            line += 1
            prefix = body[:cut]
            case.records.append([prefix])
            cells = next(csv.reader(io.StringIO(prefix + "\n", newline="")), [])
            if any(c.strip() for c in cells):
                case.bad[line] = header[len(cells)].strip()
            text += prefix
    if draw(st.booleans()):
        text = "\ufeff" + text
    data: str | bytes = text.encode("utf-8") if draw(st.booleans()) else text
    return data, case


def _check_against(scan: CsvScan, case: Case) -> None:
    got_good = {c.source_row or 0: c for c in scan.candidates}
    assert len(got_good) == len(scan.candidates), "two candidates claim one line"
    assert set(got_good) == set(case.good), (
        f"good rows lost or invented: got {sorted(got_good)}, want {sorted(case.good)}; "
        f"errors {scan.errors}")
    for line, want in case.good.items():
        c = got_good[line]
        for attr, value in want.items():
            got = getattr(c, attr)
            if isinstance(value, float):
                assert got is not None and math.isclose(got, value, rel_tol=1e-9,
                                                        abs_tol=1e-12), (line, attr, got, value)
            else:
                assert got == value, (line, attr, got, value)
    errors = {e.line: e for e in scan.errors}
    assert len(errors) == len(scan.errors), f"two errors for one line: {scan.errors}"
    assert set(errors) == set(case.bad), (
        f"errors at lines {sorted(errors)}, want {sorted(case.bad)}: {scan.errors}")
    for line, name in case.bad.items():
        reason = errors[line].reason
        assert name.lower() in reason.lower(), f"line {line}: {reason!r} does not name {name!r}"
    assert {s.line for s in scan.skipped} == case.calls
    assert all("puts only" in s.reason for s in scan.skipped)


@settings(FUZZ, max_examples=budget(150))
@given(csv_files())
@example((  # inf volume crashed the file; so did an impossible footer time
    "Symbol,Price~,Exp Date,Strike,Type,Bid,Volume\n"
    "AAPL,100,2025-12-19,90,Put,1,inf\nMSFT,100,2025-12-19,90,Put,1,5\n"
    "\"Downloaded from Barchart.com as of 13-45-2025 08:15pm CDT\"\n",
    Case([], good={3: {"symbol": "MSFT", "volume": 5}}, bad={2: "Volume"})))
@example((  # blank lines before the header shifted line numbers; extra cells passed
    "\n\nSymbol,Price~,Exp Date,Strike,Type,Bid,Volume,Open Int\n"
    "AAPL,100,2025-12-19,90,Put,1,1,234,\nMSFT,1e999,2025-12-19,90,Put,1,5,\n"
    "IBM,100,2025-12-19,90,Put,1,5,6\n",
    Case([], good={6: {"symbol": "IBM", "open_interest": 6}}, bad={4: "cells", 5: "Price~"})))
def test_good_rows_come_through_and_bad_rows_are_named(file: tuple[str | bytes, Case]) -> None:
    data, case = file
    scan = parse_barchart_csv(data, today=TODAY)
    _check_against(scan, case)


# --- real exports with damage ------------------------------------------------------------

SAMPLES = ["naked-put-option-screener-csp-stock-etf-08-24-2025.csv", "barchart-main-view.csv",
           "options-screener-high-ivr-credit-spread-scanner.csv",
           "covered-call-option-screener-call-short-stock-08-28-2025.csv"]


def _outcomes(scan: CsvScan) -> dict[int, tuple[str, Any]]:
    out: dict[int, tuple[str, Any]] = {c.source_row or 0: ("good", c) for c in scan.candidates}
    out |= {e.line: ("error", e.reason) for e in scan.errors}
    out |= {s.line: ("skip", s.reason) for s in scan.skipped}
    return out


@settings(FUZZ, max_examples=budget(40))
@given(st.sampled_from(SAMPLES), st.data())
def test_damage_to_a_real_export_costs_only_the_damaged_rows(name: str, data: st.DataObject
                                                             ) -> None:
    raw = (DATA / name).read_bytes()
    clean = parse_barchart_csv(raw, today=TODAY)
    before = _outcomes(clean)
    text = raw.decode("utf-8-sig")
    lines = text.splitlines(keepends=True)
    header = next(csv.reader([lines[0]]))
    goods = sorted(c.source_row or 0 for c in clean.candidates)
    if not goods:  # an all-calls export: damage the calls' required columns instead
        goods = sorted(s.line for s in clean.skipped)
    hit = data.draw(st.lists(st.sampled_from(goods), unique=True, min_size=1, max_size=5))
    damaged: dict[int, str] = {}
    for line in hit:
        cells = next(csv.reader([lines[line - 1]]))
        eol = lines[line - 1][len(lines[line - 1].rstrip("\r\n")):]
        how = data.draw(st.sampled_from(["Strike", "Exp Date", "Bid", "Symbol", "short",
                                         "long"]))
        if how == "short":
            cells = cells[:data.draw(st.integers(1, len(cells) - 1))]
            damaged[line] = header[len(cells)]
        elif how == "long":
            cells.insert(data.draw(st.integers(0, len(cells))), "1")
            damaged[line] = "cells"
        else:
            i = header.index(how)
            cells[i] = data.draw({"Strike": st.one_of(bad_number, st.just("-5")),
                                  "Exp Date": st.sampled_from(["banana", "2025-02-30", ""]),
                                  "Bid": st.one_of(bad_number, st.sampled_from(MISSING_TOKENS)),
                                  "Symbol": st.just("")}[how])
            damaged[line] = how
        out = io.StringIO()
        csv.writer(out, lineterminator=eol).writerow(cells)
        lines[line - 1] = out.getvalue()
    text = "".join(lines)
    if data.draw(st.booleans()):
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    blob = (b"\xef\xbb\xbf" if data.draw(st.booleans()) else b"") + text.encode()
    scan = parse_barchart_csv(blob, today=TODAY)
    after = _outcomes(scan)
    assert set(after) == set(before)
    for line, (kind, value) in before.items():
        if line in damaged and after[line][0] == "skip":
            assert kind == "skip", (line, after[line])  # a call is skipped whatever it says
        elif line in damaged:
            assert after[line][0] == "error", (line, after[line])
            assert damaged[line].lower() in after[line][1].lower(), (damaged[line], after[line])
        else:
            assert after[line] == (kind, value), f"line {line} changed: {after[line]}"
    assert scan.snapshot_time == clean.snapshot_time


# --- anything at all ---------------------------------------------------------------------

HEADER = "Symbol,Price~,Exp Date,Strike,Type,Bid,Volume,Delta\n"


@settings(FUZZ, max_examples=budget(200))
@given(st.one_of(st.binary(max_size=400),
                 st.text(max_size=400),
                 st.lists(st.text(st.characters(codec="utf-8"), max_size=60),
                          max_size=10).map(lambda ls: HEADER + "\n".join(ls)),
                 st.lists(st.lists(st.sampled_from(["AAPL", "1", "2025-12-19", "Put", "",
                                                    '"', ",", "N/A", "inf", "\r", "\ufeff",
                                                    "x" * 140_000]),
                                   max_size=9).map(",".join), max_size=8)
                 .map(lambda ls: HEADER + "\n".join(ls))))
@example(HEADER + 'AAPL,100,2025-12-19,90,Put,1,"' + "x" * 140_000 + '",0.2\n'
         "MSFT,100,2025-12-19,90,Put,1,5,0.2\n")
@example(b"\xff\xfeSymbol")
def test_any_bytes_give_a_scan_or_a_named_refusal(data: str | bytes) -> None:
    try:
        scan = parse_barchart_csv(data, today=TODAY)
    except BarchartCsvError as exc:
        assert str(exc)
        return
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    reader, n_records = csv.reader(io.StringIO(text, newline="")), 0
    while True:  # count the records as the parser sees them, unreadable ones included
        try:
            next(reader)
        except StopIteration:
            break
        except csv.Error:
            pass
        n_records += 1
    lines = [c.source_row for c in scan.candidates] + [e.line for e in scan.errors] + [
        s.line for s in scan.skipped]
    assert len(lines) == len(set(lines)), "a line reported twice"
    assert all(line is not None and 2 <= line <= n_records + 1 for line in lines)
    assert all(e.reason for e in scan.errors)
    for c in scan.candidates:
        assert c.strike > 0 and c.underlying_price > 0 and c.bid is not None and c.bid >= 0
        assert all(math.isfinite(v) for v in (c.strike, c.underlying_price, c.bid))


@settings(FUZZ, max_examples=budget(60))
@given(st.sampled_from(["Symbol", "Price~", "Exp Date", "Strike", "Type", "Bid"]),
       st.sampled_from(["drop", "repeat"]))
def test_a_broken_header_is_refused_naming_the_column(column: str, how: str) -> None:
    names = ["Symbol", "Price~", "Exp Date", "Strike", "Type", "Bid"]
    header = [n for n in names if n != column] if how == "drop" else [*names, column]
    text = ",".join(header) + "\nAAPL,100,2025-12-19,90,Put,1\n"
    if how == "repeat" and column in ("Symbol", "Price~"):
        text = ",".join(header) + "\nAAPL,100,2025-12-19,90,Put,1,X\n"
    try:
        parse_barchart_csv(text, today=TODAY)
    except BarchartCsvError as exc:
        label = {"Price~": "Price"}.get(column, column)
        assert label in str(exc) or (column in ("Exp Date", "Strike", "Type")
                                     and "Exp Date, Strike, Type" in str(exc)), str(exc)
    else:
        raise AssertionError(f"{how} {column}: accepted")


def test_unreadable_file_is_a_named_refusal(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"Symbol,Price~\n\xff\xfe")
    try:
        read_barchart_csv(path, today=TODAY)
    except BarchartCsvError as exc:
        assert "UTF-8" in str(exc)
    else:
        raise AssertionError("accepted")
