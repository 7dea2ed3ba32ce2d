"""`putdesk audit`: the trail of decisions, orders, fills, halts and resumes, with who."""

import json
from pathlib import Path

from tests.cli.run import putdesk
from tests.core.risk.worlds import world, write

DATA = Path(__file__).parents[1] / "data"


def test_the_trail_has_every_decision_with_who(env, tmp_path):
    env = env | {"ORDER_REPRICE_INTERVAL_SECONDS": "0.05", "ORDER_TIMEOUT_SECONDS": "5"}
    scenario = str(write(tmp_path, world()))
    putdesk(env, "scan", "--csv", str(DATA / "barchart-main-view.csv"), "--scenario",
            str(DATA / "screen-world.json"))
    putdesk(env, "check", "KO", "68", "2026-12-31", "--stage", "--scenario", scenario)
    putdesk(env, "execute", "--scenario", scenario)
    putdesk(env, "emergency-stop", "lunch")
    putdesk(env, "resume-trading", "--yes")
    r = putdesk(env, "audit", "--json", "--since", "1h")
    assert r.returncode == 0, r.stderr
    events = json.loads(r.stdout)["events"]
    kinds = {e["kind"] for e in events}
    assert {"scan", "risk_decision", "staged", "order_filled", "halt", "resume"} <= kinds
    halt = next(e for e in events if e["kind"] == "halt")
    assert halt["actor"].startswith("cli ") and "lunch" in halt["message"]
    decision = next(e for e in events if e["kind"] == "risk_decision")
    assert len(decision["data"]["checks"]) == 18  # every check, as the governor saw it
    only = json.loads(putdesk(env, "audit", "--json", "--kind", "halt", "--kind",
                              "resume").stdout)["events"]
    assert {e["kind"] for e in only} == {"halt", "resume"}
    human = putdesk(env | {"COLUMNS": "160"}, "audit", "--limit", "3")
    assert human.returncode == 0 and "Audit (3 events" in human.stdout


def test_bad_since_is_bad_input(env):
    r = putdesk(env, "audit", "--since", "yesterday-ish")
    assert r.returncode == 2 and "--since: 'yesterday-ish'" in r.stderr
