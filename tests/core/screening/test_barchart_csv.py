"""The parser on Barchart's real exports (tests/data, from shared/data/barchart) and on
hand-made damage."""

from datetime import date, datetime
from pathlib import Path

import pytest

from core.clock import NEW_YORK
from core.screening.barchart_csv import BarchartCsvError, parse_barchart_csv, read_barchart_csv

DATA = Path(__file__).parents[2] / "data"
MAIN_VIEW = DATA / "naked-put-option-screener-csp-stock-etf-08-24-2025.csv"
TODAY = date(2025, 8, 25)


def test_main_view_export():
    scan = read_barchart_csv(MAIN_VIEW, today=TODAY)
    assert len(scan.candidates) == 93 and not scan.errors and not scan.skipped
    aapl = scan.candidates[0]
    assert (aapl.symbol, aapl.strike, aapl.expiration, aapl.bid) == (
        "AAPL", 220.0, date(2025, 9, 19), 2.79)
    assert aapl.dte == 25  # recomputed from today, not the file's 27
    assert aapl.otm_pct == pytest.approx((227.76 - 220) / 227.76)
    assert aapl.delta == pytest.approx(-0.28339)  # positive in the file, a put's delta here
    assert aapl.source_iv_rank == pytest.approx(0.155) and aapl.raw_iv is None
    assert (aapl.volume, aapl.open_interest) == (2801, 17784)
    nflx = next(c for c in scan.candidates if c.symbol == "NFLX")
    assert nflx.strike == 1160.0  # "1,160.00"
    assert scan.snapshot_time == datetime.fromisoformat("2025-08-24T20:15:00-05:00")
    assert all(not c.warnings for c in scan.candidates)  # OTM% agrees with Moneyness


def test_generic_screener_resaved_by_a_spreadsheet():
    scan = read_barchart_csv(DATA / "options-screener-high-ivr-credit-spread-scanner.csv",
                             today=date(2025, 3, 24))
    assert scan.candidates and scan.skipped  # puts kept, calls skipped with a reason
    assert all("puts only" in s.reason for s in scan.skipped)
    assert len(scan.candidates) + len(scan.skipped) == 635
    wolf = next(c for c in scan.candidates if c.symbol == "WOLF" and c.strike == 4.5
                and c.expiration == date(2025, 3, 28))
    assert wolf.raw_iv == pytest.approx(1.7455) and wolf.delta < 0
    assert wolf.bid == 0.0  # M/D/YYYY dates, a zero bid kept as 0 (not missing)
    assert scan.snapshot_time is not None  # unquoted footer padded with commas


def test_covered_call_export_is_all_skipped_calls():
    scan = read_barchart_csv(DATA / "covered-call-option-screener-call-short-stock-08-28-2025.csv",
                             today=TODAY)
    assert not scan.candidates and len(scan.skipped) == 144 and not scan.errors


def test_custom_view_without_an_option_bid_is_refused_naming_it():
    with pytest.raises(BarchartCsvError) as err:
        read_barchart_csv(DATA / "naked-put-option-screener-csp-stock-etf-08-29-2025.csv",
                          today=TODAY)
    assert "Bid (the option's" in str(err.value)


def test_missing_required_column_is_named():
    with pytest.raises(BarchartCsvError, match="Strike"):
        parse_barchart_csv("Symbol,Price~,Exp Date,Type,Bid\nAAPL,1,2025-09-19,Put,1\n",
                           today=TODAY)
    with pytest.raises(BarchartCsvError, match=r"Price~ \(or Price, Last~\)"):
        parse_barchart_csv("Symbol,Exp Date,Strike,Type,Bid\nAAPL,2025-09-19,1,Put,1\n",
                           today=TODAY)
    with pytest.raises(BarchartCsvError, match="empty"):
        parse_barchart_csv("\ufeff\r\n", today=TODAY)


def test_bom_crlf_reordered_columns_extras_and_missing_values():
    text = ("\ufeffType,Strike,Extra,Symbol,Bid,\"Exp Date\",Price~,Delta,\"Open Int\",IV\r\n"
            "Put,\"1,005.00\",x,BKNG,12.5,12/19/25,\"1,200\",0.2,\"1,234\",35.5%\r\n"
            "Put,90,x,XYZ,N/A,2025-12-19,100,unch,,N/A\r\n"
            "Put,90,x,XYZ,1.1,2025-12-19,100,unch,,N/A\r\n"
            "Put,90,x,XYZ,1.1\r\n"
            "\"Downloaded from Barchart.com as of 11-20-2025 03:05pm CST\"\r\n")
    scan = parse_barchart_csv(text.encode("utf-8"), today=date(2025, 11, 21))
    assert [c.symbol for c in scan.candidates] == ["BKNG", "XYZ"]
    bkng = scan.candidates[0]
    assert (bkng.strike, bkng.underlying_price, bkng.open_interest) == (1005.0, 1200.0, 1234)
    assert bkng.raw_iv == pytest.approx(0.355) and bkng.expiration == date(2025, 12, 19)
    xyz = scan.candidates[1]
    assert xyz.delta is None and xyz.raw_iv is None and xyz.open_interest is None
    assert [(e.line, e.symbol) for e in scan.errors] == [(3, "XYZ"), (5, "XYZ")]
    assert "no option bid" in scan.errors[0].reason
    assert "cells" in scan.errors[1].reason


def test_stale_and_missing_footer_are_flagged():
    body = "Symbol,Price~,Exp Date,Strike,Type,Bid\nAAPL,100,2025-12-19,90,Put,1\n"
    now = datetime(2025, 11, 24, 10, 0, tzinfo=NEW_YORK)
    fresh = parse_barchart_csv(body + '"Downloaded from Barchart.com as of 11-24-2025 '
                               '08:00am CST"\n', today=now.date(), now=now)
    assert fresh.warnings == []
    stale = parse_barchart_csv(body + "downloaded from barchart.com as of 11-20-2025 "
                               "08:00am CST,,,,\n", today=now.date(), now=now)
    assert stale.warnings and stale.warnings[0].startswith("stale file: downloaded 97 h ago")
    unknown = parse_barchart_csv(body, today=now.date(), now=now)
    assert "file's age is unknown" in unknown.warnings[0]


def test_repeated_option_column_after_the_contract_columns_is_refused():
    text = "Symbol,Price~,Exp Date,Strike,Type,Bid,Bid\nAAPL,1,2025-12-19,1,Put,1,2\n"
    with pytest.raises(BarchartCsvError, match="more than once"):
        parse_barchart_csv(text, today=TODAY)


def test_moneyness_disagreement_is_a_warning():
    text = ("Symbol,Price~,Exp Date,Strike,Type,Moneyness,Bid\n"
            "AAPL,100,2025-12-19,90,Put,-25.00%,1\n")
    c = parse_barchart_csv(text, today=TODAY).candidates[0]
    assert c.warnings and "disagrees" in c.warnings[0]


def test_unreadable_file(tmp_path):
    f = tmp_path / "x.csv"
    f.write_bytes(b"\xff\xfe\x00\x00garbage")
    with pytest.raises(BarchartCsvError, match="not UTF-8"):
        read_barchart_csv(f, today=TODAY)
