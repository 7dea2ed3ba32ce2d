"""A Barchart export screened by columns: read with pyarrow, numbers parsed and the
screening filters applied as numpy columns, a Candidate built only for rows that pass.

Measured on a 5,000-row export (2 shared vCPUs): pyarrow reads it in 1.2-1.6 ms and
polars in 2.0-2.4 ms (pandas.read_csv 2.4-2.8 ms, csv.reader 6 ms); pyarrow also names
the line of every row it cannot split, so it is the reader. Only the columns the screen
uses are converted.

Exactness: the result is the one barchart_csv's row parser and filters.check give
(`screen_exact` is that path, and the tests compare the two). Symbols, types and dates
are read by the row parser's own functions, once per distinct cell (a few dozen in
5,000 rows). A number cell is taken by the columns only when its text has one of the
plain forms whose value is certain (digits with optional sign, `$`, thousands commas,
decimals and `%`). Any row with another form - a footer, a call, N/A in a required
column, a shifted row, a date like 8/29/25 - goes through the row parser, unchanged (its
cells split from its own line, as the csv module splits it), so its value or its error
reads exactly as before. A file whose rows pyarrow cannot number as the csv module does
(a line break inside a quoted cell, bare CR line ends) is parsed row by row throughout.

Duplicate rows (the same cells) are screened once; the file's warnings say how many
were collapsed. The rows turned away are kept as columns and built as Rejection records
when first read (`Rejections`).
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from core.models import Candidate, Rejection
from core.screening.barchart_csv import (
    FOOTER,
    BarchartCsvError,
    CsvScan,
    RowIssue,
    _date,
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
    rejected: Sequence[Rejection] = field(default_factory=list)
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
    row parser must decide (an unreadable header, an empty file). The first 64 kB are
    tried alone (StringIO copies all it is given): a header found there with text after
    it is the one the whole file gives."""
    if len(text) > 65_536:
        head = text[:65_536]
        found = _header_in(head)
        if found is not None and head.count("\n") > found[2]:
            return found[0], found[1]
    found = _header_in(text)
    return None if found is None else (found[0], found[1])


def _header_in(text: str) -> tuple[int, list[str], int] | None:
    reader = csv.reader(io.StringIO(text, newline=""))
    blank = 0
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                return blank, cells, reader.line_num
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
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10)
    table = _read_table(body, ends, blank + 1, len(header), {0, *index.values()})
    if table is None:
        return _rows_only(text, today, now, stale_hours, settings)
    columns, lines, invalid = table
    return _screen_columns(columns, lines, invalid, body, ends, header, index, today, now,
                           stale_hours, settings)


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


def _read_table(body: bytes, ends: np.ndarray, skip: int, width: int, wanted: set[int]
                ) -> tuple[dict[int, Any], np.ndarray, list[tuple[int, str]]] | None:
    """The `wanted` columns as strings, the line of each row, and the rows pyarrow could
    not split into `width` cells (line, text). None when its numbering would not match
    the csv module's (then the row parser reads the file). `ends`: where each line ends."""
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
                column_types={n: pa.string() for n in names},
                include_columns=[names[i] for i in sorted(wanted)], strings_can_be_null=False,
                quoted_strings_can_be_null=False, null_values=[]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    records = skip + table.num_rows + len(invalid)
    physical = len(ends) + (0 if body.endswith(b"\n") or not body else 1)
    if records != physical or (b"\r" in body and b"\r" in body.replace(b"\r\n", b"")):
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
    return ({i: table.column(names[i]).combine_chunks() for i in sorted(wanted)}, lines,
            invalid)


@dataclass
class _Parsed:
    value: np.ndarray  # float64
    present: np.ndarray  # bool: a value (False: missing -> None)
    exact: np.ndarray  # bool: the cell is one of the certain forms


@functools.cache
def _missing_cells() -> Any:
    """MISSING_TOKENS in every mix of case, as a cell reads before lower()."""
    import itertools

    import pyarrow as pa

    cells = {"".join(chars) for token in MISSING_TOKENS
             for chars in itertools.product(*({c.lower(), c.upper()} for c in token))}
    return pa.array(sorted(cells))


def _numbers(column: Any, percent: bool) -> _Parsed:
    """Plain numbers by one cast: thousands commas dropped, trailing % taken off (as
    _number's rstrip), the missing tokens set aside; a column with any other form is read
    by NUMBER. Each step runs only on a column that needs it (each costs ~0.02-0.15 ms
    on 5,000 cells; a failed cast ~1.5 ms, so the common forms never reach one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(column)
    body = column
    if pc.match_substring(column, ",").true_count:
        body = pc.replace_substring(body, ",", "")
    pct = pc.ends_with(body, "%")
    if pct.true_count:
        body = pc.utf8_rtrim(body, "%")
    missing = pc.is_in(column, value_set=_missing_cells())
    if missing.true_count:
        body = pc.if_else(missing, pa.scalar("0"), body)
        absent = missing.to_numpy(zero_copy_only=False)
    else:
        absent = np.zeros(n, dtype=bool)
    try:
        value = pc.cast(body, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _numbers_by_pattern(column, percent)
    if percent:
        value = value / 100.0
    elif pct.true_count:
        value = np.where(pct.to_numpy(zero_copy_only=False), value / 100.0, value)
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


def _by_value(column: Any, read: Callable[[str], Any]) -> tuple[np.ndarray, list[Any],
                                                                 np.ndarray]:
    """`read` (the row parser's own function) once per distinct cell: (each row's index
    into the distinct values, the values, whether each was readable). A column of
    symbols, types or dates has a few dozen distinct cells in 5,000 rows, and the value
    is the row parser's by construction."""
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column)
    values: list[Any] = []
    ok: list[bool] = []
    for text in encoded.dictionary.to_pylist():
        try:
            values.append(read(text))
            ok.append(True)
        except ValueError:
            values.append(None)
            ok.append(False)
    return encoded.indices.to_numpy(zero_copy_only=False), values, np.array(ok, dtype=bool)


def _symbol(text: str, footer: bool) -> str:
    """What _row reads from a symbol cell (empty: an error); `footer`: the cell is also
    the row's first, which scan_record checks for the footer first."""
    if footer and FOOTER.match(text):
        raise ValueError("footer")
    value = text.strip().upper()
    if not value:
        raise ValueError("empty")
    return value


def _put_type(text: str) -> str:
    """A type cell _row reads as a put (anything else goes through the row parser)."""
    value = text.strip().lower()
    if not value.startswith("p"):
        raise ValueError(value)
    return value


def _line_offsets(body: bytes, ends: np.ndarray) -> np.ndarray:
    """Where each physical line starts, and (last) where the body ends."""
    tail = [] if body.endswith(b"\n") or not body else [len(body)]
    return np.concatenate([np.zeros(1, dtype=np.int64), ends + 1,
                           np.array(tail, dtype=np.int64)])


def _line_cells(body: bytes, offsets: np.ndarray, line: int) -> list[str] | csv.Error:
    """Line `line` (1 = the first) split as the row parser splits it: each record read
    by the columns is one physical line (_read_table checks), so the csv module reading
    the line alone reads what it reads in the whole file."""
    raw = body[offsets[line - 1]:offsets[line]].decode("utf-8").rstrip("\r\n")
    return next(_split(raw))


def _unique_rows(lines: np.ndarray, body: bytes, offsets: np.ndarray
                 ) -> tuple[np.ndarray, int]:
    """(rows to screen, duplicates): a row with the same cells as an earlier one is a
    duplicate, unless every cell is blank (the row parser skips those uncounted).

    Rows are first keyed by their line with every quote and CR removed: the same cells
    always give the same key (a cell's quoting changes only its quotes), so a row whose
    key no other row shares has no duplicate. Only rows sharing a key are split and
    compared cell by cell, once per distinct line. 5,000 distinct rows cost ~0.5 ms so;
    joining every row's cells ~1.5 ms."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(lines)
    keep = np.ones(n, dtype=bool)
    if n < 2:
        return keep, 0
    text, starts = body, offsets
    if not body.endswith(b"\n"):  # the last line's key ends with a newline too
        text, starts = body + b"\n", offsets.copy()
        starts[-1] += 1
    keys = pa.Array.from_buffers(pa.large_binary(), len(starts) - 1,
                                 [None, pa.py_buffer(starts), pa.py_buffer(text)])
    if b'"' in body:
        keys = pc.replace_substring(keys, '"', "")
    if b"\r" in body:
        keys = pc.replace_substring(keys, "\r", "")
    ids = pc.dictionary_encode(keys).indices.to_numpy(zero_copy_only=False)[lines - 1]
    shared = np.flatnonzero(np.bincount(ids)[ids] > 1)
    if not len(shared):
        return keep, 0
    # The same line is the same cells; lines that differ are split and compared.
    raw = pa.Array.from_buffers(pa.large_binary(), len(starts) - 1,
                                [None, pa.py_buffer(starts), pa.py_buffer(text)])
    line_ids = pc.dictionary_encode(raw).indices.to_numpy(zero_copy_only=False)[
        lines[shared] - 1]
    _distinct, first_of_line, line_group = np.unique(line_ids, return_index=True,
                                                     return_inverse=True)
    cells_of: dict[tuple[str, ...], int] = {}  # cells -> group
    group_of_line: list[int] = []
    blank_group: list[bool] = []
    for j in first_of_line.tolist():
        cells = _line_cells(body, offsets, int(lines[shared[j]]))
        key = tuple(cells) if isinstance(cells, list) else (f"\0{j}",)
        if key not in cells_of:
            cells_of[key] = len(cells_of)
            # Never collapsed: a blank row, and a row the csv module cannot read.
            blank_group.append(not isinstance(cells, list) or not any(c.strip() for c in cells))
        group_of_line.append(cells_of[key])
    group = np.array(group_of_line, dtype=np.int64)[line_group.reshape(-1)]
    _groups, first = np.unique(group, return_index=True)
    later = np.ones(len(shared), dtype=bool)
    later[first] = False
    later &= ~np.array(blank_group, dtype=bool)[group]
    keep[shared[later]] = False
    return keep, int(later.sum())


class Rejections(Sequence[Rejection]):
    """The rows turned away, built when first read (the JSON, the screen and the audit
    read them all; a scan that is only counted or logged never does): `head` as given,
    then `count` more from `build`."""

    def __init__(self, head: list[Rejection], count: int,
                 build: Callable[[], list[Rejection]]) -> None:
        self._head = head
        self._count = count
        self._build: Callable[[], list[Rejection]] | None = build
        self._items: list[Rejection] | None = None

    def _all(self) -> list[Rejection]:
        if self._items is None:
            assert self._build is not None
            self._items = [*self._head, *self._build()]
            self._build = None
        return self._items

    def __len__(self) -> int:
        return len(self._head) + self._count

    @overload
    def __getitem__(self, i: int) -> Rejection: ...

    @overload
    def __getitem__(self, i: slice) -> list[Rejection]: ...

    def __getitem__(self, i: int | slice) -> Rejection | list[Rejection]:
        return self._all()[i]

    def __iter__(self) -> Iterator[Rejection]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return self._all() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._all())


#: The Candidate fields a row read by the columns fills, in this order.
_FAST_FIELDS = ("symbol", "expiration", "strike", "underlying_price", "dte", "otm_pct", "bid",
                "ask", "mid", "last", "volume", "open_interest", "raw_iv", "source_iv_rank",
                "delta", "source_row")


def _screen_columns(columns: dict[int, Any], lines: np.ndarray,
                    invalid: list[tuple[int, str]], body: bytes, ends: np.ndarray,
                    header: list[str], index: dict[str, int], today: date,
                    now: datetime | None, stale_hours: float,
                    settings: ScreenerSettings) -> CsvScreen:
    import pyarrow.compute as pc

    from core.screening.filters import (
        check_columns,
        column_notes,
        column_reason,
        log_rule_counts,
    )

    n = len(lines)
    scan = CsvScan(columns={k: header[i].strip() for k, i in index.items()})
    offsets = _line_offsets(body, ends)
    keep, duplicates = _unique_rows(lines, body, offsets)
    fast = keep.copy()
    # A cell past the csv module's field limit is an error there: such a row goes
    # through the row parser. A line no longer than the limit has no such cell.
    limit = csv.field_size_limit()
    if n and np.diff(offsets).max() > limit:
        for col in columns.values():
            fast &= pc.less_equal(pc.utf8_length(col), limit).to_numpy(zero_copy_only=False)
    # Symbol, type and date: the row parser's functions, once per distinct cell.
    symbol_at = index["symbol"]
    sym_idx, sym_values, sym_ok = _by_value(columns[symbol_at],
                                            functools.partial(_symbol, footer=symbol_at == 0))
    fast &= sym_ok[sym_idx] if n else fast
    if symbol_at != 0:  # the footer (full width when padded with commas): the row parser
        fast &= ~pc.match_substring_regex(columns[0], "ownloaded", ignore_case=True).to_numpy(
            zero_copy_only=False)
    type_idx, _types, type_ok = _by_value(columns[index["type"]], _put_type)
    fast &= type_ok[type_idx] if n else fast
    exp_idx, exp_values, exp_ok = _by_value(columns[index["expiration"]], _date)
    fast &= exp_ok[exp_idx] if n else fast
    parsed: dict[str, _Parsed] = {}
    for canonical, i in index.items():
        if canonical in NUMBER_FIELDS:
            parsed[canonical] = p = _numbers(columns[i], canonical in PERCENT_FIELDS)
            if canonical in INT_FIELDS:  # int() of a float past int64 stays exact there
                with np.errstate(invalid="ignore"):
                    p.exact &= ~p.present | (np.abs(p.value) < 2.0 ** 62)
            fast &= p.exact

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
    records: list[tuple[int, list[str] | csv.Error]] = [
        (line, _line_cells(body, offsets, line))
        for line in lines[np.flatnonzero(keep & ~fast)].tolist()]
    seen_invalid: set[tuple[str, ...]] = set()
    for number, raw in invalid:
        cells = next(_split(raw))
        if isinstance(cells, list) and any(c.strip() for c in cells):
            same = tuple(cells)
            if same in seen_invalid:
                duplicates += 1
                continue
            seen_invalid.add(same)
        records.append((number, cells))
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
    days = np.array([(d - today).days if d is not None else 0 for d in exp_values],
                    dtype=np.int64)
    dte_fast = days[exp_idx[rows]]

    def fast_col(name: str) -> tuple[np.ndarray, np.ndarray]:
        p = parsed.get(name)
        if p is None:
            return np.zeros(k), np.zeros(k, dtype=bool)
        return np.where(p.present[rows], p.value[rows], 0.0), p.present[rows]

    price_f, strike_f, bid_f = price[rows], strike[rows], bid[rows]
    otm_f = (price_f - strike_f) / price_f

    def merged(fast_values: np.ndarray, slow_values: list[Any], dtype: Any) -> np.ndarray:
        if not slow_cands:
            return fast_values.astype(dtype)
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

    rule, seen, rule_counts = check_columns(cols, settings)
    passed_mask = rule < 0
    notes = column_notes(cols, passed_mask, settings)
    # Candidates for the fast rows that passed (by position in `order`), built at once.
    picked = order[passed_mask]
    fast_pos = picked[picked < k]
    won = rows[fast_pos]

    def optional(name: str, integer: bool = False) -> list[Any]:
        p = parsed.get(name)
        if p is None:
            return [None] * len(won)
        values = p.value[won]
        present = p.present[won]
        out = values.astype(np.int64) if integer else values
        if present.all():
            return out.tolist()  # type: ignore[no-any-return]
        boxed = out.astype(object)
        boxed[~present] = None
        return boxed.tolist()  # type: ignore[no-any-return]

    delta_won = parsed["delta"].value[won] if "delta" in parsed else np.zeros(len(won))
    delta_list = (-np.abs(delta_won)).tolist()
    if "delta" in parsed:
        delta_list = [d if ok else None for d, ok in zip(
            delta_list, parsed["delta"].present[won].tolist(), strict=True)]
    else:
        delta_list = [None] * len(won)
    built = Candidate.many(_FAST_FIELDS, zip(
        [sym_values[i] for i in sym_idx[won].tolist()],
        [exp_values[i] for i in exp_idx[won].tolist()],
        strike[won].tolist(), price[won].tolist(), dte_fast[fast_pos].tolist(),
        otm_f[fast_pos].tolist(), bid[won].tolist(), optional("ask"), optional("mid"),
        optional("last"), optional("volume", True), optional("open_interest", True),
        optional("iv"), optional("iv_rank"), delta_list, lines[won].tolist(), strict=True))
    if "moneyness" in parsed:  # the row parser's warning when the file disagrees
        p = parsed["moneyness"]
        otm_won = otm_f[fast_pos]
        with np.errstate(invalid="ignore"):
            odd = p.present[won] & (np.abs(otm_won + p.value[won]) > 0.01)
        for j in np.flatnonzero(odd).tolist():
            otm, moneyness = float(otm_won[j]), float(p.value[won][j])
            built[j] = built[j].with_warning(
                f"OTM% {otm:.1%} disagrees with the file's Moneyness {moneyness:+.2%}")
    fast_built = iter(built)
    passed = [next(fast_built) if src < k else slow_cands[src - k]
              for src in picked.tolist()]

    failed = np.flatnonzero(~passed_mask)

    def filtered() -> list[Rejection]:
        # ~1 us a record: 4,000 rejections of one export are built in a few ms (a frozen
        # dataclass's __init__ is ~3x that); reasons repeat, so each is formatted once.
        out: list[Rejection] = []
        new, put = object.__new__, object.__setattr__
        reasons: dict[tuple[int, float], str] = {}
        sym_list, strike_list, line_list = sym_idx.tolist(), strike.tolist(), lines.tolist()
        rows_list = rows.tolist()
        exp_list = exp_idx.tolist()
        for r, v, src in zip(rule[failed].tolist(), seen[failed].tolist(),
                             order[failed].tolist(), strict=True):
            reason = reasons.get((r, v))
            if reason is None:
                reason = reasons[(r, v)] = column_reason(r, v, settings)
            if src >= k:
                out.append(Rejection.of(slow_cands[src - k], "filter", reason))
                continue
            row = rows_list[src]
            rec = new(Rejection)
            put(rec, "__dict__", {"symbol": sym_values[sym_list[row]],
                                  "strike": strike_list[row],
                                  "expiration": exp_values[exp_list[row]], "stage": "filter",
                                  "reason": reason, "source_row": line_list[row]})
            out.append(rec)
        return out

    parse = scan.rejections()
    rejected = Rejections(parse, len(failed), filtered)
    log_rule_counts(rule_counts, _after(rejected, len(parse)))
    return CsvScreen(passed, rejected, notes, scan.warnings, scan.snapshot_time, scan.errors,
                     duplicates)


def _after(items: Sequence[Rejection], start: int) -> Iterator[Rejection]:
    """items[start:], read only when iterated (at DEBUG)."""
    yield from itertools.islice(items, start, None)


def _split(raw: str) -> Iterator[list[str] | csv.Error]:
    try:
        yield next(csv.reader([raw]))
    except csv.Error as exc:
        yield exc
    except StopIteration:
        yield []


__all__ = [
    "CsvScreen",
    "Rejections",
    "re",
    "read_limited",
    "screen_csv",
    "screen_csv_file",
    "screen_exact",
]
