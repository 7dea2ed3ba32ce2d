"""`putdesk check` as an operator runs it: sizing and every pre-trade check from the
shell, on scenario files (spec 2.3A worked examples, 2.2, 2.1A, 6.4, 1.3)."""

import json
from pathlib import Path

import pytest

from tests.cli.run import putdesk
from tests.core.risk.worlds import short_put, world, write

CHECK_KEYS = {"approved", "contracts", "sizing", "checks", "whatif"}
WHATIF_KEYS = {"init_margin_before", "init_margin_after", "margin_impact", "maint_margin_after",
               "equity_with_loan_after", "commission", "source"}


def check(env, tmp_path: Path, data: dict, *args: str):
    scenario = write(tmp_path, data, "check-world.json")
    return putdesk(env, "check", *args, "--scenario", str(scenario), "--json")


def test_json_shape_and_approval(env, tmp_path):
    r = check(env, tmp_path, world(), "KO", "66", "2026-12-31")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert set(data) >= CHECK_KEYS
    assert set(data["whatif"]) >= WHATIF_KEYS
    assert data["approved"] is True and data["whatif"]["source"] == "whatif"
    assert [c["status"] for c in data["checks"]] == ["pass"] * 18
    assert all({"name", "status", "reason"} <= set(c) for c in data["checks"])


def test_500_dollar_stock_on_100k_at_2pct_is_one_contract(env, tmp_path):
    """Spec 2.3A: max risk $2,000, practical max loss $12,500 per contract -> 1, not 5."""
    r = check(env, tmp_path, world(cash=100_000, vix=12), "CAT", "500", "2026-12-31")
    data = json.loads(r.stdout)
    assert data["contracts"] == 1
    assert data["sizing"]["fixed"] == 5 and data["sizing"]["risk_based"] == 0
    assert data["sizing"]["practical_loss_per_contract"] == 12_500
    log = Path(env["PUTDESK_LOG_FILE"]).read_text()
    assert "Position size: 1 contracts (fixed=5, risk-based=0, using min)" in log
    assert "VIX=12.00, sizing adjustment=1x" in log


def test_30_dollar_stock_on_100k_at_2pct_is_two_contracts(env, tmp_path):
    """Spec 2.3A: max risk $2,000, practical max loss $750 per contract -> 2, not 5."""
    r = check(env, tmp_path, world(cash=100_000, vix=12), "INTC", "30", "2026-12-31")
    data = json.loads(r.stdout)
    assert data["sizing"]["risk_based"] == 2
    assert data["contracts"] == 2
    assert "Position size: 2 contracts (fixed=5, risk-based=2, using min)" in Path(
        env["PUTDESK_LOG_FILE"]).read_text()


def test_contracts_option_can_only_lower_the_size(env, tmp_path):
    more = json.loads(check(env, tmp_path, world(cash=1_000_000, vix=12), "INTC", "26",
                            "2026-12-31", "--contracts", "9").stdout)
    assert more["contracts"] == 5
    fewer = json.loads(check(env, tmp_path, world(cash=1_000_000, vix=12), "INTC", "26",
                             "2026-12-31", "--contracts", "2").stdout)
    assert fewer["contracts"] == 2


def test_rejection_exits_1_and_names_the_deciding_check(env, tmp_path):
    book = [short_put(s, k) for s, k in (("AAPL", 190), ("MSFT", 400), ("NVDA", 150),
                                         ("JNJ", 140), ("UNH", 280), ("JPM", 260),
                                         ("XOM", 100), ("KO", 60), ("DUK", 105))]
    r = check(env, tmp_path, world(positions=book), "AMD", "170", "2026-12-31")
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["approved"] is False
    assert data["rejected_by"] == "sector_concentration"
    sector = next(c for c in data["checks"] if c["name"] == "sector_concentration")
    assert sector["reason"] == ("Sector Information Technology concentration 40% exceeds 30% "
                                "limit (4 of 10 positions)")
    assert len(data["checks"]) == 18  # every check still reports


def test_earnings_inside_the_dte_rejects_from_the_shell(env, tmp_path):
    data = world()
    data["underlyings"]["AMD"]["earnings"] = "2026-11-29"
    r = check(env, tmp_path, data, "AMD", "185", "2026-12-04")
    assert r.returncode == 1
    assert json.loads(r.stdout)["rejected_by"] == "earnings"


def test_halted_switch_rejects(env, tmp_path):
    putdesk(env, "emergency-stop", "stepping away")
    r = check(env, tmp_path, world(), "KO", "66", "2026-12-31")
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["rejected_by"] == "kill_switch"
    assert data["checks"][0]["reason"] == "Trading halted: stepping away"


def test_human_output_lists_checks_sizing_and_margin(env, tmp_path):
    scenario = write(tmp_path, world(), "human.json")
    r = putdesk(env | {"COLUMNS": "160"}, "check", "KO", "66", "2026-12-31",
                "--scenario", str(scenario))
    assert r.returncode == 0, r.stderr
    assert "APPROVED" in r.stdout
    for name in ("kill_switch", "sector_concentration", "excess_liquidity", "vix_halt"):
        assert name in r.stdout
    assert "Sizing: 1 contract —" in r.stdout and "IBKR what-if" in r.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["KO", "0", "2026-12-31"], "STRIKE: 0 must be greater than 0"),
    (["KO", "66", "2026-31-12"], "EXPIRATION: '2026-31-12' is not a date"),
    (["KO", "66", "2026-11-01"], "EXPIRATION: 2026-11-01 is in the past"),
    (["KO", "66", "2026-12-31", "--premium", "-1"], "--premium: -1 must be greater than 0"),
    (["KO", "66", "2026-12-31", "--contracts", "0"], "--contracts: 0 must be at least 1"),
    (["K$O", "66", "2026-12-31"], "SYMBOL: 'K$O' is not a ticker symbol"),
])
def test_bad_arguments_exit_2_naming_the_argument(env, tmp_path, args, message):
    r = check(env, tmp_path, world(), *args)  # with --json: the error is JSON on stdout
    assert r.returncode == 2
    error = json.loads(r.stdout)["error"]
    assert error["code"] == "bad_input" and message in error["message"], error
    assert "Traceback" not in r.stderr


# --- issue 16: risk figures a trader can trust --------------------------------------------


def test_a_deep_in_the_money_put_is_rejected_from_the_shell(env, tmp_path):
    """`putdesk check BA 240 ...` (BA at 218, delta about -0.78) was approved and filled
    before the governor ran the entry bounds."""
    r = check(env, tmp_path, world(), "BA", "240", "2026-12-31")
    assert r.returncode == 1
    data = json.loads(r.stdout)
    checks = {c["name"]: c for c in data["checks"]}
    assert data["rejected_by"] == "otm_pct"
    assert checks["otm_pct"]["reason"] == "OTM% -10.1% outside range 10-25%"
    assert checks["delta"]["status"] == "fail"
    assert checks["delta"]["reason"].endswith("outside range 0.05-0.3")


def test_a_one_dte_put_is_rejected_from_the_shell(env, tmp_path):
    r = check(env, tmp_path, world(), "KO", "66", "2026-11-25", "--premium", "0.05")
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["rejected_by"] == "dte"
    assert data["reason"] == "DTE 1 below minimum 7"


def test_a_negative_net_liquidation_is_rejected_from_the_shell(env, tmp_path):
    r = check(env, tmp_path, world(cash=-1.0, equity_history=[]), "KO", "66", "2026-12-31")
    assert r.returncode == 1
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["margin"]["status"] == "fail"
    assert checks["excess_liquidity"]["status"] == "fail"
    assert checks["excess_liquidity"]["reason"].startswith(
        "NetLiquidation $-1.00 is not a usable positive figure")


def test_an_unknown_symbol_stops_first_and_pages_nobody(env, tmp_path):
    r = check(env, tmp_path, world(), "ZZZZ", "100", "2026-12-18")
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert [c["name"] for c in data["checks"]] == ["symbol"]
    assert data["reason"].startswith("Unknown symbol: ZZZZ")
    events = json.loads(putdesk(env, "audit", "--json").stdout)["events"]
    assert not [e for e in events if e["severity"] in ("CRITICAL", "EMERGENCY")]
    assert "Margin limit rejection" not in Path(env["PUTDESK_LOG_FILE"]).read_text()


def test_two_accounts_on_one_database_do_not_trip_each_others_breakers(env, tmp_path):
    """The audit's case: a check on one account then on another (a third of the equity)
    on one default database halted trading with "Weekly loss limit exceeded -32.70%"."""
    small = world(cash=30_000.0)
    small["account"]["id"] = "DU0000777"
    assert check(env, tmp_path, world(), "KO", "66", "2026-12-31").returncode == 0
    r = check(env, tmp_path, small, "KO", "66", "2026-12-31")
    assert r.returncode == 0, r.stdout
    status = json.loads(putdesk(env, "status", "--json").stdout)
    assert status["halted"] is False


def test_a_gap_since_the_previous_close_reads_in_the_daily_figure(env, tmp_path):
    """103k at the previous close, 100k now: Daily P&L -2.91% (it read +0.00% when the
    baseline was the first equity seen today), past the -2% limit."""
    history = [{"date": "2026-11-20", "net_liquidation": 103_000.0},
               {"date": "2026-11-23", "net_liquidation": 103_000.0}]
    r = check(env, tmp_path, world(equity_history=history), "KO", "66", "2026-12-31")
    assert r.returncode == 1
    daily = {c["name"]: c for c in json.loads(r.stdout)["checks"]}["daily_loss"]
    assert daily["reason"].startswith("Daily loss limit exceeded: Daily P&L -2.91%")


def test_friday_close_106k_then_monday_100k_fails_the_weekly_limit(env, tmp_path):
    monday = world(now="2026-11-30T10:30:00-05:00",
                   equity_history=[{"date": "2026-11-27", "net_liquidation": 106_000.0}])
    r = check(env, tmp_path, monday, "KO", "66", "2026-12-31")
    assert r.returncode == 1
    weekly = {c["name"]: c for c in json.loads(r.stdout)["checks"]}["weekly_loss"]
    assert weekly["reason"].startswith("Weekly loss limit exceeded: Weekly P&L -5.66% "
                                       "($100,000.00 vs previous week's close $106,000.00")
    assert json.loads(putdesk(env, "status", "--json").stdout)["halted"] is True
