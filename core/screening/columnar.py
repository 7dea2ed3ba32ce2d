"""A Barchart export screened by columns: read with pyarrow, numbers parsed and the
screening filters applied as numpy columns (csv_columns); the candidates that pass and
the rows turned away are built as objects when first read (LazyList), so a screen that
is only counted or shown in part never builds thousands of them.

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
were collapsed.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import logging
import math
from collections.abc import Iterator, Sequence
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
    _date,
    _map_columns,
    finish,
    parse_barchart_csv,
    scan_record,
)
from core.screening.csv_columns import (
    Parsed,
    Table,
    by_value,
    numbers,
    put_type,
    read_table,
    split,
    symbol,
    unique_rows,
)
from core.screening.filters import apply_filters
from core.screening.lazy_list import LazyList

if TYPE_CHECKING:
    from core.config import ScreenerSettings

log = logging.getLogger("putdesk.screening.csv")

#: A header longer than this, or wider, is not a Barchart export: refused before any
#: work proportional to it (a 30 MB one-line file cost 1.4 GB and 24 s before).
MAX_LINE = 1_000_000
MAX_COLUMNS = 1_000
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

    passed: Sequence[Candidate] = field(default_factory=list)
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
    with os.fdopen(fd, "rb", buffering=0) as f:
        if info.st_size > max_bytes:
            raise BarchartCsvError(
                f"{path} is {info.st_size / 1e6:.1f} MB, over the "
                f"{max_bytes / 1e6:g} MB limit (PUTDESK_CSV_MAX_MB)")
        # Read by the file's size (read(max_bytes) allocates the whole limit first:
        # 0.1 ms for a 500 kB export), then whatever it grew by, up to the limit.
        data = f.read(info.st_size + 1)
        while len(data) <= max_bytes:
            more = f.read(max_bytes + 1 - len(data))
            if not more:
                break
            data += more
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
    table = read_table(body, blank + 1, len(header), {0, *index.values()})
    if table is None:
        return _rows_only(text, today, now, stale_hours, settings)
    return _screen_columns(table, header, index, today, now, stale_hours, settings)


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


#: The Candidate fields a row read by the columns fills, in this order.
_FAST_FIELDS = ("symbol", "expiration", "strike", "underlying_price", "dte", "otm_pct", "bid",
                "ask", "mid", "last", "volume", "open_interest", "raw_iv", "source_iv_rank",
                "delta", "source_row")


def _screen_columns(table: Table, header: list[str], index: dict[str, int], today: date,
                    now: datetime | None, stale_hours: float,
                    settings: ScreenerSettings) -> CsvScreen:
    import pyarrow.compute as pc

    from core.screening.filters import (
        check_columns,
        column_notes,
        column_reason,
        log_rule_counts,
    )

    columns, lines = table.columns, table.lines
    n = len(lines)
    scan = CsvScan(columns={k: header[i].strip() for k, i in index.items()})
    # Symbol, type and date: the row parser's functions, once per distinct cell.
    symbol_at = index["symbol"]
    sym_idx, sym_values, sym_ok = by_value(columns[symbol_at],
                                           functools.partial(symbol, footer=symbol_at == 0))
    fast = sym_ok[sym_idx] if n else np.ones(0, dtype=bool)
    if symbol_at != 0:  # the footer (full width when padded with commas): the row parser
        fast &= ~pc.match_substring_regex(columns[0], "ownloaded", ignore_case=True).to_numpy(
            zero_copy_only=False)
    type_idx, _types, type_ok = by_value(columns[index["type"]], put_type)
    fast &= type_ok[type_idx] if n else fast
    exp_idx, exp_values, exp_ok = by_value(columns[index["expiration"]], _date)
    fast &= exp_ok[exp_idx] if n else fast
    parsed: dict[str, Parsed] = {}
    for canonical, i in index.items():
        if canonical in NUMBER_FIELDS:
            parsed[canonical] = p = numbers(columns[i], canonical in PERCENT_FIELDS)
            if canonical in INT_FIELDS:  # int() of a float past int64 stays exact there
                with np.errstate(invalid="ignore"):
                    p.exact &= ~p.present | (np.abs(p.value) < 2.0 ** 62)
            fast &= p.exact
    keep, duplicates = unique_rows(
        [sym_idx, type_idx, exp_idx, *(p.value for p in parsed.values())], table)
    fast &= keep
    # A cell past the csv module's field limit is an error there: a row whose line is
    # longer than the limit goes through the row parser (a shorter line has no such cell).
    within = table.rows_within(csv.field_size_limit())
    if within is not None:
        fast &= within

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
        (line, table.cells(line)) for line in lines[np.flatnonzero(keep & ~fast)].tolist()]
    seen_invalid: set[tuple[str, ...]] = set()
    for number, raw in table.invalid:
        cells = next(split(raw))
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
    order = (np.argsort(np.concatenate([lines[rows], np.array(
        [c.source_row or 0 for c in slow_cands], dtype=np.int64)]), kind="stable")
        if slow_cands else np.arange(k))  # the fast rows alone are in line order
    days = np.array([(d - today).days if d is not None else 0 for d in exp_values],
                    dtype=np.int64)
    dte_fast = days[exp_idx[rows]]
    price_f, strike_f, bid_f = price[rows], strike[rows], bid[rows]
    otm_f = (price_f - strike_f) / price_f

    def merged(fast_values: np.ndarray, slow_values: list[Any], dtype: Any) -> np.ndarray:
        if not slow_cands:
            return fast_values.astype(dtype, copy=False)
        return np.concatenate([fast_values.astype(dtype),
                               np.array(slow_values, dtype=dtype).reshape(-1)])[order]

    cols: dict[str, np.ndarray] = {
        "dte": merged(dte_fast, [c.dte for c in slow_cands], np.int64),
        "otm": merged(otm_f, [c.otm_pct for c in slow_cands], np.float64),
        "bid": merged(bid_f, [np.nan if c.bid is None else c.bid for c in slow_cands],
                      np.float64)}
    for key, field_name, attr, transform in (
            ("iv", "iv", "raw_iv", None), ("delta", "delta", "delta", np.abs),
            ("vol", "volume", "volume", np.trunc), ("oi", "open_interest", "open_interest",
                                                   np.trunc)):
        got = parsed.get(field_name)
        if got is None:
            values, present = np.zeros(k), np.zeros(k, dtype=bool)
        else:
            present = got.present[rows]
            values = np.where(present, got.value[rows], 0.0)
        if transform is not None:
            values = transform(values)
        slow = [getattr(c, attr) for c in slow_cands]
        cols[key] = merged(values, [0.0 if v is None else abs(float(v)) if attr == "delta"
                                    else float(v) for v in slow], np.float64)
        cols[f"{key}_p"] = merged(present, [v is not None for v in slow], bool)

    rule, seen, rule_counts = check_columns(cols, settings)
    passed_mask = rule < 0
    notes = column_notes(cols, passed_mask, settings)
    picked = order[passed_mask]
    failed = np.flatnonzero(~passed_mask)

    def candidates() -> list[Candidate]:
        """The candidates that passed, fast and slow, in line order."""
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

        delta: list[float | None] = [None] * len(won)
        if "delta" in parsed:
            delta = [d if ok else None for d, ok in zip(
                (-np.abs(parsed["delta"].value[won])).tolist(),
                parsed["delta"].present[won].tolist(), strict=True)]
        built = Candidate.many(_FAST_FIELDS, zip(
            [sym_values[i] for i in sym_idx[won].tolist()],
            [exp_values[i] for i in exp_idx[won].tolist()],
            strike[won].tolist(), price[won].tolist(), dte_fast[fast_pos].tolist(),
            otm_f[fast_pos].tolist(), bid[won].tolist(), optional("ask"), optional("mid"),
            optional("last"), optional("volume", True), optional("open_interest", True),
            optional("iv"), optional("iv_rank"), delta, lines[won].tolist(), strict=True))
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
        return [next(fast_built) if src < k else slow_cands[src - k]
                for src in picked.tolist()]

    def filtered() -> list[Rejection]:
        # ~1 us a record: 4,000 rejections of one export are built in a few ms (a frozen
        # dataclass's __init__ is ~3x that); reasons repeat, so each is formatted once.
        out: list[Rejection] = []
        new, put = object.__new__, object.__setattr__
        reasons: dict[tuple[int, float, float], str] = {}  # -0.0 reads "-0.0%"
        sym_list, strike_list, line_list = sym_idx.tolist(), strike.tolist(), lines.tolist()
        rows_list = rows.tolist()
        exp_list = exp_idx.tolist()
        for r, v, src in zip(rule[failed].tolist(), seen[failed].tolist(),
                             order[failed].tolist(), strict=True):
            key = (r, v, math.copysign(1.0, v))
            reason = reasons.get(key)
            if reason is None:
                reason = reasons[key] = column_reason(r, v, settings)
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
    rejected = LazyList(len(parse) + len(failed), lambda: [*parse, *filtered()])
    log_rule_counts(rule_counts, _after(rejected, len(parse)))
    return CsvScreen(LazyList(len(picked), candidates), rejected, notes, scan.warnings,
                     scan.snapshot_time, scan.errors, duplicates)


def _after(items: Sequence[Rejection], start: int) -> Iterator[Rejection]:
    """items[start:], read only when iterated (at DEBUG)."""
    yield from itertools.islice(items, start, None)


__all__ = [
    "CsvScreen",
    "read_limited",
    "screen_csv",
    "screen_csv_file",
    "screen_exact",
]
