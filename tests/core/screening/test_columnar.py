"""The columnar CSV screener gives what the row parser and the filters give: on every
shipped and test export, on generated files mixing good and damaged rows (the damaged
ones go through the row parser: the fallback), and on a file where every kind of row
the columns cannot read is present. Plus the CSV limits of issue 17: regular files only,
a size limit, duplicates collapsed, one log line per reason."""

from __future__ import annotations

import csv
import logging
import os
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given

from core.config import load_settings
from core.screening import columnar
from core.screening.barchart_csv import BarchartCsvError, parse_barchart_csv
from core.screening.columnar import screen_csv, screen_csv_file, screen_exact
from core.screening.filters import apply_filters
from core.screening.lazy_list import LazyList
from tests.fuzz import FUZZ
from tests.fuzz.test_csv_fuzz import csv_files

DATA = Path(__file__).parents[2] / "data"
SHIPPED = Path(__file__).parents[3] / "core" / "data" / "scenarios" / "demo-barchart.csv"
FILES = [*sorted(DATA.glob("*.csv")), SHIPPED]
SETTINGS = load_settings({}).screener
KW = {"today": date(2025, 8, 25), "now": datetime(2025, 8, 26, 12, tzinfo=UTC),
      "stale_hours": 24.0, "settings": SETTINGS}
HEADER = ('Symbol,Price~,"Exp Date",DTE,Strike,Type,Moneyness,Bid,Volume,"Open Int",'
          '"IV Rank",IV,Delta')


def outcome(screen: columnar.CsvScreen) -> tuple:
    return (screen.passed, screen.rejected, screen.notes, screen.warnings,
            screen.snapshot_time, screen.errors)


def today_path(data: bytes) -> tuple:
    """The screener before columns: parse every row, then filter the candidates."""
    scan = parse_barchart_csv(data, today=KW["today"], now=KW["now"],
                              stale_hours=KW["stale_hours"])
    passed, rejected, notes = apply_filters(scan.candidates, SETTINGS)
    return (passed, [*scan.rejections(), *rejected], notes, scan.warnings,
            scan.snapshot_time, scan.errors)


def fast_rows(monkeypatch) -> list[int]:
    """Counts the rows the row parser sees (the rest were read by columns)."""
    seen: list[int] = []
    original = columnar.scan_record

    def counting(scan, line, *args):
        seen.append(line)
        return original(scan, line, *args)

    monkeypatch.setattr(columnar, "scan_record", counting)
    return seen


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_identical_to_the_row_path_on_every_shipped_and_test_export(path, monkeypatch):
    data = path.read_bytes()
    slow = fast_rows(monkeypatch)
    try:
        want = today_path(data)
    except BarchartCsvError as exc:  # an export without the option's Bid column
        with pytest.raises(BarchartCsvError, match=re.escape(str(exc))):
            screen_csv(data, **KW)
        return
    got = screen_csv(data, **KW)
    by_rows = len(slow)
    if got.duplicates:  # the shipped demo repeats two BAC rows: screened once, said so
        assert outcome(got) == outcome(screen_exact(data, **KW))
        assert got.duplicates == 2
        assert "2 duplicate rows (the same cells as an earlier row) screened once" in \
            got.warnings
    else:
        assert outcome(got) == want
    # Only the rows the row parser turns away (errors, calls), the footer and blank rows
    # went through it: every candidate row was read by the columns.
    blank = sum(1 for line in data.decode("utf-8-sig").splitlines() if not line.strip(", "))
    assert by_rows <= sum(1 for r in got.rejected if r.stage == "parse") + 1 + blank


ODD_ROWS = [
    "AAPL,231.40,2026-12-18,24,200.00,Put,-13.57%,0.55,120,\"1,615\",N/A,32%,0.1",  # columns
    "AAPL,231.40,12/18/2026,24,205.00,Put,-11.41%,0.60,86,605,N/A,33%,0.12",  # M/D/YYYY
    "AAPL,231.40,2026-02-30,24,205.00,Put,-11.41%,0.60,86,605,N/A,33%,0.12",  # no such day
    "AAPL,231.40,2026-12-18,24,210.00,Call,-9%,0.70,86,605,N/A,33%,0.12",  # a call
    "AAPL,231.40,2026-12-18,24,N/A,Put,-9%,0.70,86,605,N/A,33%,0.12",  # no strike
    "AAPL,231.40,2026-12-18,24,195.00,Put,-15%,N/A,86,605,N/A,33%,0.12",  # no bid
    "AAPL,231.40,2026-12-18,24,195.00,Put,-15%,0.50,86,605,N/A,33%,abc",  # junk delta
    "AAPL,231.40,2026-12-18,24,195.00,Put,-15%,0.50,86,605",  # short row
    "AAPL,231.40,2026-12-18,24,195.00,Put,-15%,0.50,86,605,N/A,33%,0.12,9",  # long row
    "\u00a0MSFT,420.00,2026-12-18,24,360.00,Put,-14%,1.10,40,900,N/A,35%,0.15",  # nbsp
    "MSFT,420.00,2026-12-18,24,360.00, Put ,-14%,$1.10,+40,900,n/a,35 %,0.15",  # spaced
    "MSFT,420.00,2026-12-18,24,355.00,Put,-15%,1.10,1e3,900,N/A,inf,0.15",  # inf IV
    "MSFT,420.00,2026-12-18,24,350.00,Put,-16%,1.05,40,900,N/A,35%%,0.15",  # two % signs
    ",,,,,,,,,,,,",  # blank row
    "",  # blank line
    "MSFT,420.00,2026-12-18,24,340.00,Put,-19%,0.95,40,900,N/A,36%,0.14",  # columns
    "MSFT,420.00,2026-12-18,24,340.00,Put,-19%,0.95,40,900,N/A,36%,0.14",  # duplicate
    "NVDA,150.00,2026-12-18,24,\"1,120.00\",Put,-9%,0.95,40,\"12,000\",N/A,60%,-0.2",
    '"Downloaded from Barchart.com as of 08-24-2025 08:15pm CDT"',
]


def test_every_row_the_columns_cannot_read_goes_through_the_row_parser(monkeypatch):
    data = ("\n".join([HEADER, *ODD_ROWS]) + "\n").encode()
    slow = fast_rows(monkeypatch)
    got = screen_csv(data, **KW)
    fell_back = set(slow)
    assert outcome(got) == outcome(screen_exact(data, **KW))
    assert got.duplicates == 1
    # Without the duplicate, the row path of today gives the same, line for line.
    lines = data.decode().splitlines()
    lines[17] = ",,,,,,,,,,,,"
    undup = ("\n".join(lines) + "\n").encode()
    assert outcome(screen_csv(undup, **KW)) == today_path(undup)
    assert fell_back == {4, 5, 6, 7, 8, 9, 10, 12, 13, 15, 16, 20}  # odd, footer
    # 2, 3 (M/D/YYYY), 11 (the symbol is read by the row parser's own strip), 14 (35%%
    # reads 0.35 both ways), 17 and 19: read by the columns
    errors = {e.line: e.reason for e in got.errors}
    assert errors[6] == "column 'Strike': no usable strike (got None)"
    assert errors[8].startswith("column 'Delta': could not convert string to float")


@FUZZ
@given(csv_files())
def test_generated_files_with_damaged_rows_read_the_same(file) -> None:
    data, _case = file
    raw = data if isinstance(data, bytes) else data.encode("utf-8")
    try:
        want = outcome(screen_exact(raw, **KW))
    except BarchartCsvError as exc:
        with pytest.raises(BarchartCsvError) as got_exc:
            screen_csv(raw, **KW)
        assert str(got_exc.value) == str(exc)
        return
    assert outcome(screen_csv(raw, **KW)) == want


def test_rejections_are_logged_once_per_rule_with_rows_at_debug(caplog, tmp_path):
    rows = [f"S{i:03d},100.00,2025-08-27,2,80.00,Put,-20%,0.50,10,500,N/A,40%,0.1"
            for i in range(300)]  # DTE 2: all below the minimum of 7
    data = ("\n".join([HEADER, *rows]) + "\n").encode()
    with caplog.at_level(logging.INFO, logger="putdesk.screening"):
        got = screen_csv(data, **KW)
    assert len(got.rejected) == 300
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["Filtered 300 candidates: DTE"]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="putdesk.screening"):
        screen_csv(data, **KW)
    assert sum("DTE 2 below minimum 7" in r.getMessage() for r in caplog.records) == 300


def test_a_file_over_the_size_limit_is_refused_by_name(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(SHIPPED.read_bytes())
    with pytest.raises(BarchartCsvError, match=r"over the 0\.001 MB limit \(PUTDESK_CSV_MAX_MB\)"):
        screen_csv_file(path, max_bytes=1000, **KW)


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_only_a_regular_file_is_read(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe.csv"
        os.mkfifo(path)  # nobody writes: reading it would wait for ever
    elif kind == "device":
        path = Path("/dev/zero")  # reading it would never end
    else:
        path = tmp_path
    with pytest.raises(BarchartCsvError, match=r"not a regular file|cannot read"):
        screen_csv_file(path, max_bytes=10_000_000, **KW)


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
@pytest.mark.parametrize("final_newline", [True, False])
def test_duplicates_are_the_same_cells_whatever_the_quoting(ending, final_newline):
    """The same cells quoted differently are one row; different cells that read alike
    without quotes are not."""
    row = "MSFT,420.00,2026-12-18,24,340.00,Put,-19%,0.95,40,900,N/A,36%,0.14"
    rows = [
        row,
        '"MSFT","420.00",2026-12-18,24,340.00,Put,-19%,0.95,40,900,N/A,36%,0.14',  # same
        'M"SFT,420.00,2026-12-18,24,341.00,Put,-19%,0.95,40,900,N/A,36%,0.14',
        '"M""SFT",420.00,2026-12-18,24,341.00,Put,-19%,0.95,40,900,N/A,36%,0.14',  # same
        '"MS""FT",420.00,2026-12-18,24,341.00,Put,-19%,0.95,40,900,N/A,36%,0.14',  # not
        ",,,,,,,,,,,,", ",,,,,,,,,,,,",  # blank rows are skipped, not collapsed
        "AAPL,231.40,2026-12-18,24,200.00", "AAPL,231.40,2026-12-18,24,200.00",  # short
        row,
    ]
    text = ending.join([HEADER, *rows]) + (ending if final_newline else "")
    data = text.encode()
    got = screen_csv(data, **KW)
    assert outcome(got) == outcome(screen_exact(data, **KW))
    assert got.duplicates == 4


UNMAPPED = ('Symbol,Price~,"Exp Date",DTE,Strike,Type,Moneyness,Bid,"BE (Bid)",Volume,'
            '"Open Int","IV Rank",IV,Delta,Return')


def row_of(screen: columnar.CsvScreen, stage: str = "filter") -> list[int | None]:
    """The lines screened: the candidates and the rows the filters turned away."""
    return [*(c.source_row for c in screen.passed),
            *(r.source_row for r in screen.rejected if r.stage == stage)]


def unmapped_row(strike: str = "340.00", bid: str = "0.95", be: str = "339.05",
                 ret: str = "1%", delta: str = "0.14", volume: str = "40") -> str:
    return (f"MSFT,420.00,2026-12-18,24,{strike},Put,-19%,{bid},{be},{volume},900,N/A,36%,"
            f"{delta},{ret}")


def test_duplicates_need_every_cell_the_same_not_only_the_screened_ones():
    """Rows are first grouped by a hash of the cells the screen reads; only a group's
    rows are compared cell by cell. A row alike in every screened cell but one the
    screen does not read (Return, BE), or whose cell reads the same value in other
    digits (0.95 / 0.950), is no duplicate."""
    rows = [
        unmapped_row(),
        unmapped_row(ret="2%"),  # differs only in Return (not read): kept
        unmapped_row(be="339.050"),  # differs only in BE (not read): kept
        unmapped_row(bid="0.950"),  # the same bid in other digits: kept
        unmapped_row(),  # the first again: a duplicate
        '"MSFT",420.00,2026-12-18,24,340.00,Put,-19%,0.95,339.05,40,900,N/A,36%,0.14,2%',
    ]  # the second, quoted otherwise: a duplicate
    data = ("\n".join([UNMAPPED, *rows]) + "\n").encode()
    got = screen_csv(data, **KW)
    assert outcome(got) == outcome(screen_exact(data, **KW))
    assert got.duplicates == 2
    assert sorted(row_of(got)) == [2, 3, 4, 5]


def test_a_cell_over_the_csv_field_limit_in_a_column_not_screened_reads_as_before():
    """The csv module refuses a cell over its field limit (131,072 characters): the row
    parser names the row. A line over the limit goes through the row parser even when
    the long cell is in a column the screen does not read; a long line whose cells are
    all within the limit is still a candidate."""
    limit = csv.field_size_limit()
    rows = [unmapped_row(),
            unmapped_row(strike="330.00", ret="x" * (limit + 10)),  # a cell over the limit
            unmapped_row(strike="320.00", ret="y" * (limit - 10)),  # a line over, cells not
            unmapped_row(strike="310.00")]
    data = ("\n".join([UNMAPPED, *rows]) + "\n").encode()
    got = screen_csv(data, **KW)
    assert outcome(got) == outcome(screen_exact(data, **KW)) == today_path(data)
    assert [e.line for e in got.errors] == [3]
    assert "field larger than field limit" in got.errors[0].reason
    assert sorted(row_of(got, "filter")) == [2, 4, 5]


@pytest.mark.parametrize("deltas", [
    ["-0.14", "-0.2", "-0.18"],  # negative numbers only: no missing token, no cleaning
    ["-0.14", "-", "-0.18"],  # a lone dash: missing
    ["-0.14", "--", "0.18"],  # two dashes: missing
    ["-0.14", "", "-0.18"],  # empty: missing
    ["-0.14", "N/a", "-0.18"],  # letters: missing
    ["+0.14", "-.2", "1e-1"],  # forms the cast reads as float() does
    ["0.14", "-1-", "0.18"],  # a dash that is no number: the row parser names it
    ["0.14%", "20%", "-0.18"],  # percent signs in some cells only
    ["1,4", "20", "-0.18"],  # a comma in a number
])
def test_each_kind_of_number_column_reads_as_the_row_parser_reads_it(deltas):
    """A number column is cleaned only as far as its bytes need (commas, percent signs,
    missing tokens): each combination reads as the row parser reads it."""
    rows = [unmapped_row(strike=f"{340 - 5 * i}.00", delta=d) for i, d in enumerate(deltas)]
    data = ("\n".join([UNMAPPED, *rows]) + "\n").encode()
    assert outcome(screen_csv(data, **KW)) == outcome(screen_exact(data, **KW)) \
        == today_path(data)


def test_the_screen_builds_candidates_and_rejections_only_when_read(caplog):
    """At INFO (the product's default; at DEBUG each rejection is logged, so built)."""
    data = SHIPPED.read_bytes()
    kw = {**KW, "today": date(2026, 11, 24), "now": None}  # the demo's day
    with caplog.at_level(logging.INFO, logger="putdesk.screening.filters"):
        got = screen_csv(data, **kw)
    assert isinstance(got.passed, LazyList) and isinstance(got.rejected, LazyList)
    assert len(got.passed) > 0 and len(got.rejected) > 0
    assert not got.passed.built and not got.rejected.built  # counted, not built
    assert outcome(got) == outcome(screen_exact(data, **kw))
    assert got.passed.built and got.rejected.built


def test_a_quote_left_open_on_the_last_line_and_a_negative_zero_read_as_the_row_path():
    """Two edges a review found: the last line's open quote keeps its line end in the
    cell (so it is no duplicate of the line before), and an IV of -0% is worded "-0.0%"
    (a reason is formatted once per value, and -0.0 == 0.0)."""
    open_quote = ("\n".join([UNMAPPED, unmapped_row(), unmapped_row()[:-2] + '"1%']) + "\n"
                  ).encode()
    assert outcome(screen_csv(open_quote, **KW)) == outcome(screen_exact(open_quote, **KW))
    zeros = "\n".join([UNMAPPED, *(unmapped_row(strike=f"{340 - 5 * i}.00").replace(
        ",36%,", f",{iv},").replace("2026-12-18,24", "2025-09-19,25")  # DTE in range
        for i, iv in enumerate(["0%", "-0%", "0%", "-0%"]))]) + "\n"
    got = screen_csv(zeros.encode(), **KW)
    assert outcome(got) == outcome(screen_exact(zeros.encode(), **KW))
    assert [r.reason.split(" outside")[0] for r in got.rejected] == [
        "Raw IV 0.0%", "Raw IV -0.0%", "Raw IV 0.0%", "Raw IV -0.0%"]
