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
