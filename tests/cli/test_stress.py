"""`putdesk stress-test` from the shell (spec 6.3)."""

import json

from tests.cli.run import putdesk
from tests.core.analysis.test_stress import NAMES
from tests.core.monitoring.test_monitoring import position
from tests.core.risk.worlds import world, write


def test_cli_shows_five_scenarios_per_position_and_portfolio_with_the_flag(env, tmp_path):
    data = world(cash=14_000, positions=[position("KO", 66, quantity=-3),
                                         position("XOM", 110, quantity=-2)])
    r = putdesk(env | {"COLUMNS": "140"}, "stress-test", "--scenario",
                str(write(tmp_path, data)))
    assert r.returncode == 0, r.stderr
    for name in NAMES:
        assert name in r.stdout
    assert "Portfolio" in r.stdout and "KO 2026-12-18 66P" in r.stdout
    assert "MARGIN CALL" in r.stdout and "no margin call" in r.stdout
    j = putdesk(env, "stress-test", "--json", "--shift", "-0.07", "--iv-shift", "4",
                "--scenario", str(write(tmp_path, data)))
    scenarios = json.loads(j.stdout)["scenarios"]
    assert [s["name"] for s in scenarios] == [*NAMES, "custom"]
    assert {"pnl", "margin", "excess_liquidity", "margin_call"} <= set(scenarios[0]["portfolio"])
    assert {"position", "new_price", "pnl", "new_delta", "new_margin"} <= set(
        scenarios[0]["positions"][0])
    assert any(s["portfolio"]["margin_call"] for s in scenarios)


def test_cli_rejects_a_bad_shift(env, tmp_path):
    r = putdesk(env, "stress-test", "--shift", "-7", "--scenario", str(write(tmp_path, world())))
    assert r.returncode == 2 and "--shift: -7 must be a fraction" in r.stderr


def test_cli_stresses_from_the_marks_at_the_stated_rate_with_human_names(env, tmp_path):
    """Price now is each put's mark (as `putdesk positions` reports it), the rate is the
    configured one and is stated, and every scenario has a label; the crash names its
    symbol."""
    data = world(cash=14_000, positions=[position("KO", 66, quantity=-3),
                                         position("XOM", 110, quantity=-2)])
    scenario = str(write(tmp_path, data))
    marks = {p["position_id"]: p["mark"] for p in json.loads(
        putdesk(env, "positions", "--json", "--scenario", scenario).stdout)["positions"]}
    r = putdesk(env | {"STRESS_RISK_FREE_RATE": "0.045"}, "stress-test", "--json",
                "--scenario", scenario)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["risk_free_rate"] == 0.045
    for sc in out["scenarios"]:
        now = {p["position"]: p["price_now"] for p in sc["positions"]}
        assert now == {"KO 2026-12-18 66P": marks["KO 20261218 66 P"],
                       "XOM 2026-12-18 110P": marks["XOM 20261218 110 P"]}
    labels = [s["label"] for s in out["scenarios"]]
    crash = out["scenarios"][2]
    assert labels == ["Market drop 5%", "Market drop 10%",
                      f"Single-stock crash 20%: {crash['worst_symbol']}", "VIX spike to 35",
                      "Correlation crisis 15%"]
    human = putdesk(env | {"COLUMNS": "160", "STRESS_RISK_FREE_RATE": "0.045"}, "stress-test",
                    "--scenario", scenario)
    assert "implied vols at a 4.50% risk-free rate (STRESS_RISK_FREE_RATE)" in human.stdout
    assert "Market drop 5% (market_drop_5pct)" in human.stdout
