"""A Barchart export's cells as columns: read by pyarrow, numbers parsed as numpy arrays,
duplicate rows found, each cell read exactly as the row parser (barchart_csv) reads it or
flagged for the row parser. `columnar` screens with these.

Measured on a 5,000-row export (2 shared vCPUs): pyarrow reads the mapped columns in
1.3-1.5 ms (pandas.read_csv of the whole file 2.5 ms, csv.reader 6 ms) and names the
line of every row it cannot split, so it is the reader. Each pyarrow compute call costs
~35 us on 5,000 cells, so a column's bytes are looked at once (Python's bytes methods, a
few us) and only the steps the column needs are run.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.screening.barchart_csv import FOOTER

#: A number cell whose value is certain: what barchart_csv._number reads the same way.
NUMBER = r"^[ \t]*\$?\+*\$?(?P<sign>-?)\$?(?P<digits>\d[\d,]*(?:\.\d+)?)(?P<pct>%*)[ \t]*$"
MISSING = r"^[ \t]*(?:|[Nn]/?[Aa]|[Uu][Nn][Cc][Hh]|--|-|\$)[ \t]*$"
#: barchart_csv.MISSING as the raw cell reads (lower case, nothing around it).
MISSING_TOKENS = ["", "n/a", "na", "unch", "--", "-"]
#: The bytes of a plain number cell: a column of only these needs no cleaning first.
PLAIN = b"0123456789."


@dataclass
class Table:
    """The wanted columns of an export as pyarrow strings (column index -> array), the
    physical line of each row, and the rows pyarrow could not split (line, text)."""

    body: bytes
    columns: dict[int, Any]
    lines: np.ndarray
    invalid: list[tuple[int, str]]

    @functools.cached_property
    def offsets(self) -> np.ndarray:
        """Where each physical line starts, and (last) where the body ends. Only the rows
        sent to the row parser need it (a 500 kB scan: 0.17 ms, so not before)."""
        ends = np.flatnonzero(np.frombuffer(self.body, dtype=np.uint8) == 10)
        tail = [] if self.body.endswith(b"\n") or not self.body else [len(self.body)]
        return np.concatenate([np.zeros(1, dtype=np.int64), ends + 1,
                               np.array(tail, dtype=np.int64)])

    def cells(self, line: int) -> list[str] | csv.Error:
        """Line `line` (1 = the first) split as the row parser splits it: each record
        read by the columns is one physical line (read_table checks), so the csv module
        reading the line alone, its line end included (a quote left open keeps it in
        the last cell), reads what it reads in the whole file."""
        return next(split(self.raw_line(line).decode("utf-8")))

    def raw_line(self, line: int) -> bytes:
        offsets = self.offsets
        return self.body[offsets[line - 1]:offsets[line]]

    def rows_within(self, limit: int) -> np.ndarray | None:
        """Which rows' lines are at most `limit` bytes (None: all of them). A window of
        limit / 2 bytes that holds a newline, at every step, bounds every line without
        finding each one; only a file failing that is scanned line by line."""
        body, step = self.body, max(limit // 2, 1)
        if all(body.find(b"\n", k, k + step) >= 0 for k in range(0, len(body), step)):
            return None
        lengths = np.diff(self.offsets)
        return lengths[self.lines - 1] <= limit  # type: ignore[no-any-return]


def read_table(body: bytes, skip: int, width: int, wanted: set[int]) -> Table | None:
    """The `wanted` columns of `body` after `skip` records, each row `width` cells. None
    when pyarrow's numbering of the records would not match the csv module's (then the
    row parser reads the file)."""
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
                check_utf8=False,  # the caller decoded the whole body
                column_types={n: pa.string() for n in names},
                include_columns=[names[i] for i in sorted(wanted)], strings_can_be_null=False,
                quoted_strings_can_be_null=False, null_values=[]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    records = skip + table.num_rows + len(invalid)
    physical = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
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
    return Table(body, {i: table.column(names[i]).combine_chunks() for i in sorted(wanted)},
                 lines, invalid)


@dataclass
class Parsed:
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


def numbers(column: Any, percent: bool) -> Parsed:
    """Plain numbers by one cast: thousands commas dropped, trailing % taken off (as
    _number's rstrip), the missing tokens set aside; a column with any other form is read
    by NUMBER. The column's bytes say which of those steps it needs: a column of digits
    and points is cast at once (a failed cast ~1.5 ms: the common forms never reach one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(column)
    if n == 0:
        return Parsed(np.zeros(0), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
    _validity, offset_buffer, data = column.buffers()
    ends = np.frombuffer(offset_buffer, dtype=np.int32)[column.offset:column.offset + n + 1]
    start, stop = int(ends[0]), int(ends[-1])
    other = data.slice(start, stop - start).to_pybytes().translate(None, PLAIN)
    lengths = np.diff(ends)
    # A missing token is empty, all dashes (at most two) or has letters: only a column
    # with such a cell is compared with them.
    maybe_missing = (bool(other.translate(None, b",%+-")) or bool(lengths.min() == 0)
                     or (b"-" in other and bool((lengths <= 2).any())))
    body = column
    if b"," in other:
        body = pc.replace_substring(body, ",", "")
    pct = None
    if b"%" in other:
        pct = pc.ends_with(body, "%")
        body = pc.utf8_rtrim(body, "%")
    absent = np.zeros(n, dtype=bool)
    if maybe_missing:
        missing = pc.is_in(column, value_set=_missing_cells())
        if missing.true_count:
            body = pc.if_else(missing, pa.scalar("0"), body)
            absent = missing.to_numpy(zero_copy_only=False)
    try:
        value = pc.cast(body, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _numbers_by_pattern(column, percent)
    if percent:
        value = value / 100.0
    elif pct is not None and pct.true_count:
        value = np.where(pct.to_numpy(zero_copy_only=False), value / 100.0, value)
    present = ~absent & np.isfinite(value)
    return Parsed(value, present, present | absent)


def _numbers_by_pattern(column: Any, percent: bool) -> Parsed:
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
            number = pc.cast(pc.binary_join_element_wise(sign, digits, ""), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. 400 digits
            return Parsed(value, np.zeros(n, dtype=bool), missing)
        value = np.where(matched, number.fill_null(np.nan).to_numpy(zero_copy_only=False),
                         np.nan)
        pct = pc.not_equal(pc.struct_field(parts, [2]), "").fill_null(False)
        is_pct = pct.to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore", over="ignore"):
        value = np.where(is_pct | percent, value / 100.0, value)
    present = matched & np.isfinite(value)
    return Parsed(value, present, present | missing)


def by_value(column: Any, read: Callable[[str], Any]) -> tuple[np.ndarray, list[Any],
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


def symbol(text: str, footer: bool) -> str:
    """What _row reads from a symbol cell (empty: an error); `footer`: the cell is also
    the row's first, which scan_record checks for the footer first."""
    if footer and FOOTER.match(text):
        raise ValueError("footer")
    value = text.strip().upper()
    if not value:
        raise ValueError("empty")
    return value


def put_type(text: str) -> str:
    """A type cell _row reads as a put (anything else goes through the row parser)."""
    value = text.strip().lower()
    if not value.startswith("p"):
        raise ValueError(value)
    return value


_MIX = np.uint64(0x100000001B3)  # the 64-bit FNV prime: spreads each word over the hash


def unique_rows(keys: list[np.ndarray], table: Table) -> tuple[np.ndarray, int]:
    """(rows to screen, duplicates): a row with the same cells as an earlier one is a
    duplicate, unless every cell is blank (the row parser skips those uncounted).

    `keys` are per-row arrays that depend only on the row's cells (the parsed values and
    the distinct-cell indices of the wanted columns): rows with the same cells have the
    same keys, so a row whose hash of them no other row shares has no duplicate (5,000
    rows: ~0.1 ms). Only rows sharing a hash are split and compared cell by cell, once
    per distinct line."""
    lines = table.lines
    n = len(lines)
    keep = np.ones(n, dtype=bool)
    if n < 2:
        return keep, 0
    digest = np.zeros(n, dtype=np.uint64)
    for key in keys:
        words = key.view(np.uint64) if key.dtype.itemsize == 8 else key.astype(np.uint64)
        digest = (digest ^ words) * _MIX
    _values, inverse, counts = np.unique(digest, return_inverse=True, return_counts=True)
    shared = np.flatnonzero(counts[inverse.reshape(-1)] > 1)
    if not len(shared):
        return keep, 0
    group_of_raw: dict[bytes, int] = {}
    group_of_cells: dict[tuple[str, ...], int] = {}
    never_collapsed: list[bool] = []  # per group: a blank row, or one the csv module fails
    group = np.empty(len(shared), dtype=np.int64)
    for j, row in enumerate(shared.tolist()):
        line = int(lines[row])
        raw = table.raw_line(line)
        g = group_of_raw.get(raw)
        if g is None:
            cells = table.cells(line)
            same = tuple(cells) if isinstance(cells, list) else (f"\0{line}",)
            g = group_of_cells.get(same)
            if g is None:
                g = group_of_cells[same] = len(group_of_cells)
                never_collapsed.append(not isinstance(cells, list)
                                       or not any(c.strip() for c in cells))
            group_of_raw[raw] = g
        group[j] = g
    _groups, first = np.unique(group, return_index=True)
    later = np.ones(len(shared), dtype=bool)
    later[first] = False
    later &= ~np.array(never_collapsed, dtype=bool)[group]
    keep[shared[later]] = False
    return keep, int(later.sum())


def split(raw: str) -> Iterator[list[str] | csv.Error]:
    try:
        yield next(csv.reader([raw]))
    except csv.Error as exc:
        yield exc
    except StopIteration:
        yield []
