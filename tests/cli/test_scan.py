"""`putdesk scan` as an operator runs it, on a scenario world and a Barchart-shaped CSV
(spec 1.2A, 1.2B, 1.2C, 1.3 screening point)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parents[1] / "data"
WORLD = DATA / "screen-world.json"
CSV = DATA / "barchart-main-view.csv"



def scan(env, *args: str, **extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    r = subprocess.run([sys.executable, "-m", "console", "scan", *args],
                       env=env | extra, text=True, capture_output=True, timeout=120)
    data = json.loads(r.stdout) if r.returncode == 0 and "--json" in args else {}
    return r, data


def reasons(data) -> dict[str, tuple[str, str]]:
    return {f"{x['symbol']} {x['strike']} {x['expiration']}": (x["stage"], x["reason"])
            for x in data["rejected"]}


def test_scan_csv_end_to_end(env):
    r, data = scan(env, "--csv", str(CSV), "--scenario", str(WORLD), "--json")
    assert r.returncode == 0, r.stderr
    got = reasons(data)
    # 1.2A: OTM% outside 10-25% excluded with the spec's reason
    assert got["AAPL 225.0 2026-12-18"] == ("filter", "OTM% 2.2% outside range 10-25%")
    assert got["AAPL 150.0 2026-12-18"] == ("filter", "OTM% 34.8% outside range 10-25%")
    # 1.2C: DTE minimum 7 by default
    assert got["AAPL 200.0 2026-11-27"] == ("filter", "DTE 3 below minimum 7")
    # 1.3 point 1: earnings within DTE excluded at screening
    assert got["NVDA 150.0 2026-12-18"] == (
        "earnings", "BLOCKED: NVDA has earnings on 2026-12-02, within DTE window")
    # 1.2B: IV rank below 30% filtered during IBKR validation
    stage, reason = got["MSFT 410.0 2026-12-31"]
    assert stage == "validation" and reason.startswith("IV rank 13% below minimum 30%")
    # a bad row is reported with its line; calls are skipped with a reason
    parse = [x for x in data["rejected"] if x["stage"] == "parse"]
    assert {(x["row"], x["reason"].split(":")[0]) for x in parse} == {
        (11, "call option skipped"), (12, "column 'Exp Date'")}

    accepted = {c["symbol"]: c for c in data["accepted"]}
    assert set(accepted) == {"AAPL", "XOM", "FLAT", "NOHX"}
    aapl = accepted["AAPL"]
    assert aapl["strike"] == 200.0 and aapl["dte"] == 24 and aapl["otm_pct"] == 0.1304
    assert aapl["iv_rank"] == 0.5 and aapl["bid"] > 0 and aapl["spread_pct"] <= 0.20
    assert set(aapl["score_parts"]) == {"return", "iv_rank", "prob_otm", "liquidity",
                                        "earnings", "penalty"}
    # 1.2B: missing historical IV warns but does not block; high == low is defined
    assert any("IV rank unknown" in w for w in accepted["NOHX"]["warnings"])
    assert any("high equals low" in w for w in accepted["FLAT"]["warnings"])
    scores = [c["score"] for c in data["accepted"]]
    assert scores == sorted(scores, reverse=True)
    log = Path(env["PUTDESK_LOG_FILE"]).read_text()
    # Filter rejections: one line per rule with its count (each row is at DEBUG; every
    # one is in the JSON above).
    otm = sum(1 for x in data["rejected"] if x["reason"].startswith("OTM%"))
    assert f"Filtered {otm} candidate{'s' if otm != 1 else ''}: OTM%" in log
    assert "OTM% 2.2% outside range 10-25%" not in log
    assert "BLOCKED: NVDA has earnings on 2026-12-02, within DTE window" in log


def test_otm_range_comes_from_the_environment(env):
    r, data = scan(env, "--csv", str(CSV), "--scenario", str(WORLD), "--json",
                   BARCHART_OTM_PCT_MIN="0.02", BARCHART_OTM_PCT_MAX="0.40")
    assert r.returncode == 0, r.stderr
    got = reasons(data)
    assert not [r for _stage, r in got.values() if r.startswith("OTM%")]
    # still turned away, by the next rule: their deltas (0.40 and 0.01) are out of range
    assert got["AAPL 225.0 2026-12-18"][1] == "Delta 0.40 outside range 0.05-0.3"


def test_dte_minimum_can_be_lowered_for_testing(env):
    _r, data = scan(env, "--csv", str(CSV), "--scenario", str(WORLD), "--json",
                   BARCHART_DTE_MIN="0")
    got = reasons(data)
    assert got.get("AAPL 200.0 2026-11-27", ("", ""))[1] != "DTE 3 below minimum 7"


def test_earnings_unavailable_passes_with_a_warning(env, tmp_path):
    csv = tmp_path / "one.csv"
    csv.write_text("Symbol,Price~,Exp Date,Strike,Type,Bid\nZZZZ,50,2026-12-31,44,Put,0.6\n")
    r, data = scan(env, "--csv", str(csv), "--scenario", str(WORLD), "--json")
    assert r.returncode == 0, r.stderr
    log = Path(env["PUTDESK_LOG_FILE"]).read_text()
    assert "WARNING: earnings data unavailable for ZZZZ" in log
    # and then the broker knows no such option: rejected at validation with the reason
    assert data["rejected"][0]["stage"] == "validation"
    assert "No security definition" in data["rejected"][0]["reason"]


def test_human_output(env):
    r, _ = scan(env, "--csv", str(CSV), "--scenario", str(WORLD))
    assert r.returncode == 0, r.stderr
    assert "Accepted (4)" in r.stdout and "Rejected (7)" in r.stdout
    assert "BLOCKED: NVDA has earnings" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--csv", str(DATA / "naked-put-option-screener-csp-stock-etf-08-29-2025.csv")],
      "missing required column(s): Bid"),
     (["--csv", "/nonexistent.csv"], "file not found"),
     ([], "exactly one of --csv FILE or --api"),
     (["--api"], "BARCHART_API_KEY is not set")],
)
def test_unusable_input_exits_2_with_the_reason(env, args, message):
    r, _ = scan(env, *args, "--scenario", str(WORLD))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and "Traceback" not in r.stderr


def test_candidate_figures_match_an_independent_computation(env):
    """Issue 16: premium per contract, IBKR margin (the $2.50 minimum inside the max()),
    return on margin, annualised return and P(OTM) = N(d2), recomputed here with
    scipy.stats.norm from the figures the JSON states."""
    import math

    from scipy.stats import norm

    r, data = scan(env, "--csv", str(CSV), "--scenario", str(WORLD), "--json")
    assert r.returncode == 0, r.stderr
    assert data["accepted"]
    for c in data["accepted"]:
        s, k, premium, dte = c["underlying_price"], c["strike"], c["bid"], c["dte"]
        assert c["premium_per_contract"] == pytest.approx(premium * 100)
        rate = 0.15 if c["symbol"] in ("SPY", "QQQ", "IWM", "DIA") else 0.20
        margin = (premium + max(rate * s - max(s - k, 0.0), 0.10 * k, 2.50)) * 100
        assert c["margin_per_contract"] == pytest.approx(margin, abs=0.01)
        assert c["return_on_margin"] == pytest.approx(premium * 100 / margin)
        assert c["annualised_return"] == pytest.approx(premium * 100 / margin * 365 / dte)
        inputs = c["prob_otm_inputs"]
        assert inputs["rate"] == 0.04 and inputs["years"] == pytest.approx(dte / 365)
        sigma, t = inputs["iv"], dte / 365
        d2 = (math.log(s / k) + (0.04 - sigma**2 / 2) * t) / (sigma * math.sqrt(t))
        assert c["prob_otm"] == pytest.approx(norm.cdf(d2), abs=1e-9)
        assert c["prob_otm_method"] == "N(d2)"
        assert c["prob_otm"] < 1 - abs(c["delta"])  # 1 - |delta| = N(d1) overstates it
        assert set(c["score_parts"]) >= {"return", "iv_rank", "prob_otm", "liquidity"}
        assert all(0.0 <= v <= 1.0 for v in c["score_parts"].values())


def test_scan_refuses_a_fifo_a_device_and_an_oversized_export_by_name(env, tmp_path):
    """Issue 17 item 5: a CSV must be a regular file under PUTDESK_CSV_MAX_MB; each case
    exits 2 at once with a named error (a FIFO nobody writes to used to hang the scan,
    /dev/zero to read until memory ran out)."""
    import os

    fifo = tmp_path / "export.csv"
    os.mkfifo(fifo)
    for path, extra, message in (
            (fifo, {}, "is not a regular file"),
            (Path("/dev/zero"), {}, "is not a regular file"),
            (CSV, {"PUTDESK_CSV_MAX_MB": "0.001"}, "over the 0.001 MB limit (PUTDESK_CSV_MAX_MB)")):
        r, _data = scan(env, "--csv", str(path), "--scenario", str(WORLD), **extra)
        assert r.returncode == 2, (path, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr
