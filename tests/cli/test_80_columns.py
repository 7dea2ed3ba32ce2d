"""Every table of the command line at 80 columns (an SSH session's default) and at 160:
each key value whole on its row (symbol, expiry, strike, delta, P&L, DTE, premium,
score ...), nothing cut with "…", no line wider than the terminal; what does not fit is
hidden and named, and long text (alerts, reasons) is listed under the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import fmt
from tests.cli.run import putdesk
from tests.cli.test_positions_rolls import _propose
from tests.cli.test_scan import CSV, WORLD
from tests.core.monitoring.test_monitoring import position, pressured_amd, quote
from tests.core.risk.worlds import world, write

WIDTHS = [80, 160]


def human(env: dict[str, str], width: int, *args: str) -> str:
    r = putdesk(env | {"COLUMNS": str(width)}, *args)
    assert r.returncode in (0, 1), r.stderr
    out = r.stdout
    assert "…" not in out, out  # nothing cut
    too_wide = [line for line in out.splitlines() if len(line.rstrip()) > width]
    assert not too_wide, "\n".join(too_wide)
    return out


def row_of(out: str, first: str) -> str:
    """The table line whose first cell is `first` (the table comes before any list)."""
    return next(x for x in out.splitlines() if x.split()[:len(first.split())] == first.split())


def whole(line: str, *values: str) -> None:
    tokens = line.split()
    for value in values:
        assert all(v in tokens for v in value.split()), (value, line)


@pytest.mark.parametrize("width", WIDTHS)
def test_positions_keep_their_key_values_and_list_the_alerts(env, tmp_path, width):
    data = world(positions=[position("KO", 66), position("JNJ", 150, quantity=-2)],
                 option_quotes={"JNJ 20261218 150 P": quote(1.9, 2.0, -0.62)})
    scenario = str(write(tmp_path, data))
    figures = json.loads(putdesk(env, "positions", "--json", "--scenario", scenario).stdout)
    out = human(env, width, "positions", "--scenario", scenario)
    for p in figures["positions"]:
        contract = f"{p['symbol']} {p['expiration']} {p['strike']:g}P"
        whole(row_of(out, contract), str(p["quantity"]), fmt.greek(p["delta"]),
              fmt.pnl(p["pnl"]), str(p["dte"]))
    [alert] = figures["positions"][1]["alerts"] if figures["positions"][1]["alerts"] else \
        figures["positions"][0]["alerts"]
    # The alert is whole, on one line (not squeezed into a 4-character column)
    assert any(f"{alert['severity']} {alert['message']}" in line
               for line in out.splitlines()), out
    if width == 80:  # listed under the table, by position
        assert "\nAlerts\n" in out


@pytest.mark.parametrize("width", WIDTHS)
def test_scan_keeps_symbol_expiry_strike_delta_premium_score(env, width):
    figures = json.loads(putdesk(env, "scan", "--csv", str(CSV), "--scenario", str(WORLD),
                                 "--json").stdout)
    out = human(env, width, "scan", "--csv", str(CSV), "--scenario", str(WORLD))
    assert figures["accepted"]
    for n, c in enumerate(figures["accepted"], start=1):
        whole(row_of(out, f"{n} {c['symbol']}"), c["expiration"], f"{c['strike']:g}",
              str(c["dte"]), fmt.greek(c["delta"]), fmt.money(c["premium_per_contract"]),
              f"{c['score']:.3f}")
    if width == 80:
        said = " ".join(out.split())
        assert "(hidden at 80 columns: " in said and "widen the terminal or use --json)" in said
    else:
        assert "hidden at" not in out
        whole(row_of(out, f"1 {figures['accepted'][0]['symbol']}"),
              fmt.pct(figures["accepted"][0]["iv_rank"], 0))
    for x in figures["rejected"]:  # every rejection keeps symbol, strike and expiry
        if x["strike"] is not None and x["expiration"]:
            assert any(line.split()[:3] == [x["symbol"], f"{x['strike']:g}", x["expiration"]]
                       for line in out.splitlines()), x


@pytest.mark.parametrize("width", WIDTHS)
def test_orders_check_and_audit_keep_their_key_values(env, tmp_path, width):
    scenario = str(write(tmp_path, world(), "w.json"))
    decision = json.loads(putdesk(env, "check", "KO", "68", "2026-12-31", "--json",
                                  "--scenario", scenario).stdout)
    check = human(env, width, "check", "KO", "68", "2026-12-31", "--stage", "--scenario",
                  scenario)
    for n, c in enumerate(decision["checks"], start=1):
        whole(row_of(check, f"{n} {c['name']}"), c["status"].upper())
    [order] = json.loads(putdesk(env, "orders", "--json", "--scenario", scenario).stdout)[
        "orders"]
    out = human(env, width, "orders", "--scenario", scenario)
    whole(row_of(out, "open KO 2026-12-31 68P"), "SELL", str(order["contracts"]),
          fmt.price(order["limit_price"]), "STAGED")
    audit = human(env, width, "audit", "--limit", "5")
    assert "risk_decision" in audit and "staged" in audit


@pytest.mark.parametrize("width", WIDTHS)
def test_stress_keeps_position_and_pnl(env, tmp_path, width):
    data = world(cash=14_000, positions=[position("KO", 66, quantity=-3),
                                         position("XOM", 110, quantity=-2)])
    scenario = str(write(tmp_path, data))
    figures = json.loads(putdesk(env, "stress-test", "--json", "--scenario", scenario).stdout)
    out = human(env, width, "stress-test", "--scenario", scenario)
    for sc in figures["scenarios"]:
        assert f"{sc['label']} ({sc['name']}) — {sc['description']}" in " ".join(out.split())
        for row in sc["positions"]:
            assert any(line.split()[:3] == row["position"].split()
                       and fmt.pnl(row["pnl"]) in line.split() for line in out.splitlines())


@pytest.mark.parametrize("width", WIDTHS)
def test_rolls_keep_id_contracts_and_credit(env, tmp_path, width):
    scenario = write(tmp_path, pressured_amd(), "amd.json")
    proposal_id = _propose(env, tmp_path, scenario)
    [p] = json.loads(putdesk(env, "rolls", "--json").stdout)["rolls"]
    out = human(env, width, "rolls")
    whole(row_of(out, proposal_id[:8]), "PENDING",
          f"{p['symbol']} {p['old_expiration']} {p['old_strike']:g}P",
          f"{p['new_expiration']} {p['new_strike']:g}P", fmt.price(p["net_credit"]))


def test_performance_fits(env, tmp_path):
    human(env, 80, "performance", "--scenario", str(Path(WORLD)))
