"""One money/percent/greek style for the console, the CLI and the charts."""

from __future__ import annotations

import json

from core import fmt


def test_money_puts_the_sign_before_the_dollar():
    assert fmt.money(-477.0) == "-$477"
    assert fmt.money(-235.4) == "-$235"
    assert fmt.money(1234.5, cents=True) == "$1,234.50"
    assert fmt.money(-0.4) == "$0"  # never "-$0"
    assert fmt.money(None) == "—"


def test_pnl_always_carries_its_sign():
    assert fmt.pnl(81.0) == "+$81"
    assert fmt.pnl(-857.4999999999999) == "-$857"
    assert fmt.pnl(0.0) == "$0"


def test_greeks_prices_and_percents_are_rounded():
    assert fmt.greek(-0.2502002246774673) == "-0.25"
    assert fmt.greek(-0.0001) == "0.00" and fmt.greek(-0.004, 2) == "0.00"
    assert fmt.greek(-0.006) == "-0.01"
    assert fmt.price(7.2249999) == "7.22"
    assert fmt.pct(0.0521) == "5.2%"
    assert fmt.pct(0.0521, signed=True) == "+5.2%"
    assert fmt.contracts(1) == "1 contract" and fmt.contracts(3) == "3 contracts"


def test_json_output_loses_float_noise_not_figures():
    data = {"pnl": -857.4999999999999, "delta": [-0.2502002246774673], "n": 3, "s": "x",
            "fee": 0.1 + 0.2}
    assert json.loads(json.dumps(fmt.clean_floats(data))) == {
        "pnl": -857.5, "delta": [-0.250200224677], "n": 3, "s": "x", "fee": 0.3}


def test_a_contract_reads_the_same_on_every_console_table():
    from datetime import date

    assert fmt.contract_label("AMD", date(2026, 12, 18), 200.0) == "AMD 18Dec26 200P"
    assert fmt.contract_label("WMT", date(2027, 1, 15), 92.5) == "WMT 15Jan27 92.5P"
