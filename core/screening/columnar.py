"""A Barchart export screened by columns: read with pyarrow, numbers parsed and the
screening filters applied as numpy columns, a Candidate built only for rows that pass.

Measured on a 5,000-row export (2 shared vCPUs): pyarrow reads it in 1.2-1.6 ms and
polars in 2.0-2.4 ms (pandas.read_csv 2.4-2.8 ms, csv.reader 6 ms); pyarrow also names
the line of every row it cannot split, so it is the reader.

Exactness: the result is the one barchart_csv's row parser and filters.check give
(`screen_exact` is that path, and the tests compare the two). A cell is taken by the
columns only when its text has one of the plain forms whose value is certain (digits
with optional sign, `$`, thousands commas, decimals and `%`; an ISO date; a symbol; a
type starting with P). Any row with another form - a footer, a call, N/A in a required
column, a shifted row, a date like 8/29/25 - goes through the row parser, unchanged,
so its value or its error reads exactly as before. A file whose rows pyarrow cannot
number as the csv module does (a line break inside a quoted cell, bare CR line ends)
is parsed row by row throughout.

Duplicate rows (the same cells) are screened once; the file's warnings say how many
were collapsed.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.models import Candidate, Rejection
from core.screening.barchart_csv import (
    BarchartCsvError,
    CsvScan,
    RowIssue,
    _map_columns,
    finish,
    parse_barchart_csv,
    scan_record,
)
from core.screening.filters import apply_filters

if TYPE_CHECKING:
    from core.config import ScreenerSettings

log = logging.getLogger("putdesk.screening.csv")

#: A number cell whose value is certain: what barchart_csv._number reads the same way.
NUMBER = r"^[ \t]*\$?\+*\$?(?P<sign>-?)\$?(?P<digits>\d[\d,]*(?:\.\d+)?)(?P<pct>%*)[ \t]*$"
MISSING = r"^[ \t]*(?:|[Nn]/?[Aa]|[Uu][Nn][Cc][Hh]|--|-|\$)[ \t]*$"
#: A header longer than this, or wider, is not a Barchart export: refused before any
#: work proportional to it (a 30 MB one-line file cost 1.4 GB and 24 s before).
MAX_LINE = 1_000_000
MAX_COLUMNS = 1_000
#: barchart_csv._date's first two formats (strptime takes one or two digits for M and D).
ISO_DATE = r"^[ \t]*(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})[ \t]*$"
US_DATE = r"^[ \t]*(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})[ \t]*$"
#: barchart_csv.MISSING as the raw cell reads (lower case, nothing around it).
MISSING_TOKENS = ["", "n/a", "na", "unch", "--", "-"]
INT_FIELDS = ("volume", "open_interest", "dte")
PERCENT_FIELDS = ("moneyness", "iv", "iv_rank")
NUMBER_FIELDS = ("underlying_price", "strike", "bid", "ask", "mid", "last", "volume",
                 "open_interest", "iv", "iv_rank", "delta", "moneyness", "dte", "und_bid",
                 "und_ask")


@dataclass
class CsvScreen:
    """What screening a file gives before the earnings gate: the candidates that pass the
    filters and every row turned away (parse rejections first, as the row path lists
    them, then the filters' in row order)."""

    passed: list[Candidate] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # filter rules skipped for missing data
    warnings: list[str] = field(default_factory=list)  # about the file
    snapshot_time: datetime | None = None
    errors: list[RowIssue] = field(default_factory=list)  # rows that could not be read
    duplicates: int = 0


def screen_exact(data: bytes | str, *, today: date, now: datetime | None,
                 stale_hours: float, settings: ScreenerSettings) -> CsvScreen:
    """The row-by-row path (barchart_csv's parser, then filters.apply_filters), with the
    same collapse of duplicate rows: what `screen_csv` must equal."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.lstrip("\ufeff")
    return _rows_only(text, today, now, stale_hours, settings)


def _from_scan(scan: CsvScan, settings: ScreenerSettings, duplicates: int = 0) -> CsvScreen:
    passed, rejected, notes = apply_filters(scan.candidates, settings)
    return CsvScreen(passed, [*scan.rejections(), *rejected], notes, scan.warnings,
                     scan.snapshot_time, scan.errors, duplicates)


def read_limited(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, if it is a regular file within the size limit; else a named
    BarchartCsvError (a FIFO or a device would hang or never end)."""
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise BarchartCsvError(f"cannot read {path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise BarchartCsvError(f"{path} is not a regular file (a CSV export is a file)")
    with os.fdopen(fd, "rb") as f:
        if info.st_size > max_bytes:
            raise BarchartCsvError(
                f"{path} is {info.st_size / 1e6:.1f} MB, over the "
                f"{max_bytes / 1e6:g} MB limit (PUTDESK_CSV_MAX_MB)")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while being read
        raise BarchartCsvError(f"{path} is over the {max_bytes / 1e6:g} MB limit "
                               "(PUTDESK_CSV_MAX_MB)")
    return data


def screen_csv_file(path: Path, *, today: date, now: datetime | None, stale_hours: float,
                    settings: ScreenerSettings, max_bytes: int) -> CsvScreen:
    data = read_limited(path, max_bytes)
    try:
        return screen_csv(data, today=today, now=now, stale_hours=stale_hours,
                          settings=settings)
    except UnicodeDecodeError:
        raise BarchartCsvError(f"{path} is not UTF-8 text (is it a CSV export?)") from None


def _header(text: str) -> tuple[int, list[str]] | None:
    """(records before the header, header) as the row parser finds them; None when the
    row parser must decide (an unreadable header, an empty file)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    blank = 0
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                return blank, cells
            blank += 1
    except csv.Error:
        return None
    return None


def screen_csv(data: bytes, *, today: date, now: datetime | None, stale_hours: float,
               settings: ScreenerSettings) -> CsvScreen:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BarchartCsvError(f"not UTF-8 text (byte {exc.start}); is it a CSV export?") from None
    if len(text) > MAX_LINE and text.find("\n", 0, MAX_LINE) < 0:
        raise BarchartCsvError(f"no line break in the first {MAX_LINE // 1_000_000} MB (a "
                               f"{len(data) / 1e6:.1f} MB file): not a CSV export")
    found = _header(text)
    if found is not None and len(found[1]) > MAX_COLUMNS:
        raise BarchartCsvError(f"the header has {len(found[1]):,} columns: not a Barchart "
                               "export")
    if found is None:
        return _rows_only(text, today, now, stale_hours, settings)
    blank, header = found
    index = _map_columns(header)  # BarchartCsvError names what is missing
    body = text.encode("utf-8") if data.startswith(b"\xef\xbb\xbf") else data
    table = _read_table(body, blank + 1, len(header))
    if table is None:
        return _rows_only(text, today, now, stale_hours, settings)
    columns, lines, invalid = table
    return _screen_columns(columns, lines, invalid, header, index, today, now, stale_hours,
                           settings)


def _rows_only(text: str, today: date, now: datetime | None, stale_hours: float,
               settings: ScreenerSettings) -> CsvScreen:
    """The row parser over the whole file, duplicates collapsed."""
    from core.screening.barchart_csv import _records

    rows = _records(text)
    blank = 0
    while rows and isinstance(rows[0], list) and not any(c.strip() for c in rows[0]):
        rows.pop(0)
        blank += 1
    if not rows or isinstance(rows[0], csv.Error):
        return _from_scan(parse_barchart_csv(text, today=today, now=now,
                                             stale_hours=stale_hours), settings)
    header = rows[0]
    index = _map_columns(header)
    scan = CsvScan(columns={k: header[i].strip() for k, i in index.items()})
    seen: set[tuple[str, ...]] = set()
    duplicates = 0
    for line, cells in enumerate(rows[1:], start=2 + blank):
        if isinstance(cells, list) and any(c.strip() for c in cells):
            key = tuple(cells)
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
        scan_record(scan, line, cells, index, header, today)
    finish(scan, now, stale_hours)
    _note_duplicates(scan.warnings, duplicates)
    return _from_scan(scan, settings, duplicates)


def _note_duplicates(warnings: list[str], duplicates: int) -> None:
    if duplicates:
        warnings.append(f"{duplicates} duplicate row{'s' if duplicates != 1 else ''} "
                        "(the same cells as an earlier row) screened once")


def _read_table(body: bytes, skip: int, width: int
                ) -> tuple[list[Any], np.ndarray, list[tuple[int, str]]] | None:
    """Every column as strings, the line of each row, and the rows pyarrow could not
    split into `width` cells (line, text). None when its numbering would not match the
    csv module's (then the row parser reads the file)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = [f"c{i}" for i in range(width)]
    invalid: list[tuple[int, str]] = []

    def on_invalid(row: Any) -> str:
        invalid.append((row.number if row.number is not None else -1, row.text))
        return "skip"

    try:
        table = pcsv.read_csv(
            pa.py_buffer(body),
            read_options=pcsv.ReadOptions(skip_rows=skip, column_names=names,
                                          use_threads=False, block_size=1 << 22),
            parse_options=pcsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False,
                                            invalid_row_handler=on_invalid),
            convert_options=pcsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                quoted_strings_can_be_null=False, null_values=[]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    records = skip + table.num_rows + len(invalid)
    physical = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
    if records != physical or b"\r" in body.replace(b"\r\n", b""):
        return None
    if any(number < 0 for number, _ in invalid):
        return None
    taken = np.zeros(records + 1, dtype=bool)
    taken[: skip + 1] = True
    for number, _text in invalid:
        taken[number] = True
    lines = np.flatnonzero(~taken)
    if len(lines) != table.num_rows:
        return None
    return [table.column(i).combine_chunks() for i in range(width)], lines, invalid


@dataclass
class _Parsed:
    value: np.ndarray  # float64
    present: np.ndarray  # bool: a value (False: missing -> None)
    exact: np.ndarray  # bool: the cell is one of the certain forms


def _numbers(column: Any, percent: bool) -> _Parsed:
    """Plain numbers by one cast: thousands commas dropped, one trailing % taken off, the
    missing tokens set aside; a column with any other form is read by NUMBER."""
    import pyarrow as pa
    import pyarrow.compute as pc

    body = pc.replace_substring(column, ",", "")
    pct = pc.ends_with(body, "%")
    body = pc.if_else(pct, pc.utf8_slice_codeunits(body, 0, -1), body)
    missing = pc.is_in(pc.utf8_lower(column), value_set=pa.array(MISSING_TOKENS))
    body = pc.if_else(missing, pa.scalar("0"), body)
    try:
        value = pc.cast(body, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _numbers_by_pattern(column, percent)
    is_pct = pct.to_numpy(zero_copy_only=False)
    absent = missing.to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore", over="ignore"):
        value = np.where(is_pct | percent, value / 100.0, value)
    present = ~absent & np.isfinite(value)
    return _Parsed(value, present, present | absent)


def _numbers_by_pattern(column: Any, percent: bool) -> _Parsed:
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(column)
    missing = pc.match_substring_regex(column, MISSING).to_numpy(zero_copy_only=False)
    parts = pc.extract_regex(column, NUMBER)
    matched = parts.is_valid().to_numpy(zero_copy_only=False)
    value = np.full(n, np.nan)
    is_pct = np.zeros(n, dtype=bool)
    if matched.any():
        sign = pc.struct_field(parts, [0])
        digits = pc.replace_substring(pc.struct_field(parts, [1]), ",", "")
        try:
            numbers = pc.cast(pc.binary_join_element_wise(sign, digits, ""), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. 400 digits
            return _Parsed(value, np.zeros(n, dtype=bool), missing)
        value = np.where(matched, numbers.fill_null(np.nan).to_numpy(zero_copy_only=False),
                         np.nan)
        pct = pc.not_equal(pc.struct_field(parts, [2]), "").fill_null(False)
        is_pct = pct.to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore", over="ignore"):
        value = np.where(is_pct | percent, value / 100.0, value)
    present = matched & np.isfinite(value)
    return _Parsed(value, present, present | missing)


def _screen_columns(columns: list[Any], lines: np.ndarray, invalid: list[tuple[int, str]],
                    header: list[str], index: dict[str, int], today: date,
                    now: datetime | None, stale_hours: float,
                    settings: ScreenerSettings) -> CsvScreen:
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(lines)
    scan = CsvScan(columns={k: header[i].strip() for k, i in index.items()})
    duplicates = 0
    # Duplicates: the same cells as an earlier row (blank rows are skipped anyway).
    keep = np.ones(n, dtype=bool)
    if n:
        joined = pc.binary_join_element_wise(*columns, "\x1f")
        ids = pc.dictionary_encode(joined).indices.to_numpy(zero_copy_only=False)
        _uniq, first = np.unique(ids, return_index=True)
        keep[:] = False
        keep[first] = True
        blank = pc.match_substring_regex(joined, r"^[\x1f \t]*$").to_numpy(
            zero_copy_only=False)
        duplicates = int((~keep & ~blank).sum())
        keep |= blank
    fast = keep.copy()
    # Symbol and type: printable ASCII, so strip() and upper()/lower() read the same.
    symbol_col = columns[index["symbol"]]
    symbol_trim = pc.utf8_trim(symbol_col, " ")
    fast &= _printable(symbol_col)
    fast &= pc.greater(pc.utf8_length(symbol_trim), 0).to_numpy(zero_copy_only=False)
    fast &= ~pc.match_substring(symbol_trim, " ").to_numpy(zero_copy_only=False)
    type_col = columns[index["type"]]
    fast &= _printable(type_col)
    fast &= pc.starts_with(pc.utf8_lower(pc.utf8_trim(type_col, " ")), "p").to_numpy(
        zero_copy_only=False)
    # The footer (full width when padded with commas) goes through the row parser.
    fast &= ~pc.match_substring_regex(columns[0], "ownloaded", ignore_case=True).to_numpy(
        zero_copy_only=False)
    # Cells past the csv module's field limit are an error there: same here.
    limit = csv.field_size_limit()
    for col in columns:
        if n and (pc.max(pc.utf8_length(col)).as_py() or 0) > limit:
            fast &= pc.less_equal(pc.utf8_length(col), limit).to_numpy(zero_copy_only=False)
    parsed: dict[str, _Parsed] = {}
    for canonical, i in index.items():
        if canonical in NUMBER_FIELDS:
            parsed[canonical] = p = _numbers(columns[i], canonical in PERCENT_FIELDS)
            fast &= p.exact
    expiration, ok_date = _dates(columns[index["expiration"]])
    fast &= ok_date

    def value(name: str) -> tuple[np.ndarray, np.ndarray]:
        p = parsed.get(name)
        if p is None:
            return np.full(n, np.nan), np.zeros(n, dtype=bool)
        return p.value, p.present

    price, has_price = value("underlying_price")
    und_bid, has_ub = value("und_bid")
    und_ask, has_ua = value("und_ask")
    mid_und = has_ub & has_ua & (und_bid > 0)
    price = np.where(has_price, price, np.where(mid_und, (und_bid + und_ask) / 2, np.nan))
    has_price = has_price | mid_und
    strike, has_strike = value("strike")
    bid, has_bid = value("bid")
    with np.errstate(invalid="ignore"):
        fast &= has_price & (price > 0) & has_strike & (strike > 0) & has_bid & (bid >= 0)

    # The row parser for every row the columns cannot read with certainty, and for the
    # rows pyarrow could not split.
    width = len(header)
    records: list[tuple[int, list[str] | csv.Error]] = []
    slow = np.flatnonzero(keep & ~fast)
    if len(slow):
        cells_by_col = [col.take(pa.array(slow)).to_pylist() for col in columns]
        for j, row in enumerate(slow.tolist()):
            row_cells: list[str] = [cells_by_col[c][j] for c in range(width)]
            if any(len(c) > limit for c in row_cells):
                records.append((int(lines[row]), csv.Error(
                    f"field larger than field limit ({limit})")))
            else:
                records.append((int(lines[row]), row_cells))
    seen_invalid: set[str] = set()
    for number, raw in invalid:
        if raw in seen_invalid and raw.strip(", \t"):
            duplicates += 1
            continue
        seen_invalid.add(raw)
        records.append((number, next(_split(raw))))
    records.sort(key=lambda r: r[0])
    for line, cells in records:
        scan_record(scan, line, cells, index, header, today)
    finish(scan, now, stale_hours)
    _note_duplicates(scan.warnings, duplicates)

    # Every candidate, fast and slow, in line order, through the filters as columns.
    rows = np.flatnonzero(fast)
    slow_cands = scan.candidates
    k = len(rows)
    order = np.argsort(np.concatenate([lines[rows], np.array(
        [c.source_row or 0 for c in slow_cands], dtype=np.int64)]), kind="stable")
    dte_fast = (expiration[rows] - np.datetime64(today, "D")).astype(np.int64)

    def fast_col(name: str) -> tuple[np.ndarray, np.ndarray]:
        p = parsed.get(name)
        if p is None:
            return np.zeros(k), np.zeros(k, dtype=bool)
        return np.where(p.present[rows], p.value[rows], 0.0), p.present[rows]

    price_f, strike_f, bid_f = price[rows], strike[rows], bid[rows]
    otm_f = (price_f - strike_f) / price_f

    def merged(fast_values: np.ndarray, slow_values: list[Any], dtype: Any) -> np.ndarray:
        return np.concatenate([fast_values.astype(dtype),
                               np.array(slow_values, dtype=dtype).reshape(-1)])[order]

    def slow_opt(attr: str) -> tuple[list[float], list[bool]]:
        vals = [getattr(c, attr) for c in slow_cands]
        return [0.0 if v is None else float(v) for v in vals], [v is not None for v in vals]

    cols: dict[str, np.ndarray] = {
        "dte": merged(dte_fast, [c.dte for c in slow_cands], np.int64),
        "otm": merged(otm_f, [c.otm_pct for c in slow_cands], np.float64),
        "bid": merged(bid_f, [np.nan if c.bid is None else c.bid for c in slow_cands],
                      np.float64)}
    for key, field_name, attr, transform in (
            ("iv", "iv", "raw_iv", None), ("delta", "delta", "delta", np.abs),
            ("vol", "volume", "volume", np.trunc), ("oi", "open_interest", "open_interest",
                                                   np.trunc)):
        values, present = fast_col(field_name)
        if transform is not None:
            values = transform(values)
        slow_values, slow_present = slow_opt(attr)
        if attr == "delta":
            slow_values = [abs(v) for v in slow_values]
        cols[key] = merged(values, slow_values, np.float64)
        cols[f"{key}_p"] = merged(present, slow_present, bool)

    from core.screening.filters import check_columns, log_rule_counts, notes_for

    reasons, warn_kinds, rule_counts = check_columns(cols, settings)

    # Python values for the fast rows (one conversion per column, not per cell).
    symbols_text: list[str] = (pc.ascii_upper(symbol_trim).take(pa.array(rows)).to_pylist()
                               if k else [])
    exp_list = expiration[rows].tolist()
    strike_list, price_list, bid_list = strike_f.tolist(), price_f.tolist(), bid_f.tolist()
    line_list, dte_list, otm_list = lines[rows].tolist(), dte_fast.tolist(), otm_f.tolist()

    def optional(name: str, integer: bool = False) -> list[Any]:
        p = parsed.get(name)
        if p is None:
            return [None] * k
        values = p.value[rows]
        values = values.astype(np.int64) if integer else values
        return [v if ok else None for v, ok in zip(values.tolist(), p.present[rows].tolist(),
                                                   strict=True)]

    opt = {name: optional(name, name in ("volume", "open_interest"))
           for name in ("ask", "mid", "last", "volume", "open_interest", "iv", "iv_rank",
                        "delta", "moneyness")}
    passed: list[Candidate] = []
    filtered: list[Rejection] = []
    counts: dict[str, int] = {}
    order_list = order.tolist()
    for pos, reason in enumerate(reasons):
        src = order_list[pos]
        if reason is not None:
            if src >= k:
                filtered.append(Rejection.of(slow_cands[src - k], "filter", reason))
            else:
                filtered.append(Rejection(symbols_text[src], strike_list[src], exp_list[src],
                                          "filter", reason, line_list[src]))
            continue
        for w in warn_kinds[pos]:
            counts[w] = counts.get(w, 0) + 1
        if src >= k:
            passed.append(slow_cands[src - k])
            continue
        delta = opt["delta"][src]
        c = Candidate(symbols_text[src], exp_list[src], strike_list[src], price_list[src],
                      dte_list[src], otm_list[src], bid_list[src], opt["ask"][src],
                      opt["mid"][src], opt["last"][src], opt["volume"][src],
                      opt["open_interest"][src], opt["iv"][src], opt["iv_rank"][src],
                      -abs(delta) if delta is not None else None, "csv", line_list[src])
        moneyness = opt["moneyness"][src]
        otm = otm_list[src]
        if moneyness is not None and abs(otm + moneyness) > 0.01:
            c = c.with_warning(
                f"OTM% {otm:.1%} disagrees with the file's Moneyness {moneyness:+.2%}")
        passed.append(c)
    log_rule_counts(rule_counts, filtered)
    notes = notes_for(counts)
    return CsvScreen(passed, [*scan.rejections(), *filtered], notes, scan.warnings,
                     scan.snapshot_time, scan.errors, duplicates)


def _dates(column: Any) -> tuple[np.ndarray, np.ndarray]:
    """(datetime64[D], readable) for dates as barchart_csv._date reads them: YYYY-M-D
    (its first format) or M/D/YYYY (its second), a real day of a real month."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(column)
    y = np.zeros(n, dtype=np.int64)
    m = np.zeros(n, dtype=np.int64)
    d = np.zeros(n, dtype=np.int64)
    found = np.zeros(n, dtype=bool)
    for pattern in (ISO_DATE, US_DATE):
        parts = pc.extract_regex(column, pattern)
        hit = parts.is_valid().to_numpy(zero_copy_only=False) & ~found
        if not hit.any():
            continue
        for out, name in ((y, "y"), (m, "m"), (d, "d")):
            values = pc.cast(pc.struct_field(parts, name).fill_null("0"), pa.int64())
            out[hit] = values.to_numpy(zero_copy_only=False)[hit]
        found |= hit
    ok = found & (y >= 1) & (m >= 1) & (m <= 12) & (d >= 1)
    months = ((np.where(ok, y, 1970) - 1970) * 12 + np.where(ok, m, 1) - 1).astype(
        "datetime64[M]")
    first = months.astype("datetime64[D]")
    ok &= d <= ((months + 1).astype("datetime64[D]") - first).astype(np.int64)
    return first + (np.where(ok, d, 1) - 1).astype("timedelta64[D]"), ok


def _printable(column: Any) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.ascii_is_printable(column).fill_null(False).to_numpy(  # type: ignore[no-any-return]
        zero_copy_only=False)


def _split(raw: str) -> Iterator[list[str] | csv.Error]:
    try:
        yield next(csv.reader([raw]))
    except csv.Error as exc:
        yield exc
    except StopIteration:
        yield []


__all__ = [
    "CsvScreen",
    "re",
    "read_limited",
    "screen_csv",
    "screen_csv_file",
    "screen_exact",
]
