"""The two-stage flow from the shell: `putdesk check --stage`, `putdesk orders`,
`putdesk execute [--dry-run]`."""

import json

from tests.cli.run import putdesk
from tests.core.risk.worlds import world, write

FAST = {"ORDER_REPRICE_INTERVAL_SECONDS": "0.05", "ORDER_TIMEOUT_SECONDS": "5"}


def test_stage_list_dry_run_then_execute(env, tmp_path):
    env = env | FAST
    scenario = str(write(tmp_path, world(), "w.json"))
    staged = putdesk(env, "check", "KO", "68", "2026-12-31", "--stage", "--json",
                     "--scenario", scenario)
    assert staged.returncode == 0, staged.stderr
    ref = json.loads(staged.stdout)["staged"]["order_ref"]

    listed = json.loads(putdesk(env, "orders", "--json", "--scenario", scenario).stdout)
    assert [(o["order_ref"], o["status"]) for o in listed["orders"]] == [(ref, "STAGED")]

    dry = putdesk(env, "execute", "--dry-run", "--json", "--scenario", scenario)
    assert dry.returncode == 0, dry.stderr
    [order] = json.loads(dry.stdout)["orders"]
    assert order["result"]["outcome"] == "DRY_RUN" and order["status"] == "STAGED"

    sent = putdesk(env, "execute", ref, "--json", "--scenario", scenario)
    assert sent.returncode == 0, sent.stderr
    [order] = json.loads(sent.stdout)["orders"]
    assert order["status"] == "FILLED" and order["filled"] == 1

    again = putdesk(env, "execute", "--json", "--scenario", scenario)
    assert json.loads(again.stdout)["orders"] == []


def test_execute_outside_market_hours_exits_1_and_keeps_the_order(env, tmp_path):
    scenario = str(write(tmp_path, world(now="2026-11-28T11:00:00-05:00"), "sat.json"))
    putdesk(env, "check", "KO", "68", "2026-12-31", "--stage", "--scenario", scenario)
    r = putdesk(env, "execute", "--json", "--scenario", scenario)
    assert r.returncode == 1
    [order] = json.loads(r.stdout)["orders"]
    assert order["reason"].startswith("Market closed (CLOSED")
    assert order["status"] == "STAGED"


def test_execute_unknown_id_is_bad_input(env, tmp_path):
    scenario = str(write(tmp_path, world(), "w.json"))
    r = putdesk(env, "execute", "putdesk-nope", "--scenario", scenario)
    assert r.returncode == 2
    assert "not a STAGED order: putdesk-nope" in r.stderr
