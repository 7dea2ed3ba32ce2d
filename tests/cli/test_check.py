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
    assert [c["status"] for c in data["checks"]] == ["pass"] * 12
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
    assert len(data["checks"]) == 12  # every check still reports


def test_earnings_inside_the_dte_rejects_from_the_shell(env, tmp_path):
    data = world()
    data["underlyings"]["KO"]["earnings"] = "2026-11-29"
    r = check(env, tmp_path, data, "KO", "66", "2026-12-04")
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
    assert "Sizing: 1 contracts" in r.stdout and "IBKR what-if" in r.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["KO", "0", "2026-12-31"], "STRIKE: 0 must be greater than 0"),
    (["KO", "66", "2026-31-12"], "EXPIRATION: '2026-31-12' is not a date"),
    (["KO", "66", "2026-11-01"], "EXPIRATION: 2026-11-01 is in the past"),
    (["KO", "66", "2026-12-31", "--premium", "-1"], "--premium: -1 must be greater than 0"),
    (["KO", "66", "2026-12-31", "--contracts", "0"], "--contracts: 0 must be at least 1"),
    (["K$O", "66", "2026-12-31"], "SYMBOL: 'K$O' is not a ticker symbol"),
])
def test_bad_arguments_exit_2_naming_the_argument(env, tmp_path, args, message):
    r = check(env, tmp_path, world(), *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr
