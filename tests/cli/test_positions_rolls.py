"""`putdesk positions`, `putdesk rolls`, `putdesk roll approve|reject` from the shell."""

import asyncio
import json
from pathlib import Path

from tests.cli.run import putdesk
from tests.core.monitoring.test_monitoring import position, pressured_amd, quote
from tests.core.risk.worlds import world, write
from tests.factories import make_settings, sim_engine


def test_positions_json_has_the_contract_shape(env, tmp_path):
    data = world(positions=[position("KO", 66), position("JNJ", 150)],
                 option_quotes={"JNJ 20261218 150 P": quote(1.9, 2.0, -0.62)})
    r = putdesk(env, "positions", "--json", "--scenario", str(write(tmp_path, data)))
    assert r.returncode == 0, r.stderr
    rows = {p["symbol"]: p for p in json.loads(r.stdout)["positions"]}
    keys = {"symbol", "strike", "expiration", "quantity", "delta", "underlying_price", "pnl",
            "dte", "alerts"}
    assert keys <= set(rows["KO"])
    assert rows["JNJ"]["alerts"] == [{"kind": "delta", "severity": "CRITICAL", "message":
                                      "Delta breach: JNJ delta=-0.62 (>0.50, deep ITM risk)"}]
    assert rows["KO"]["alerts"] == []


def _propose(env: dict[str, str], tmp_path: Path, scenario: Path) -> str:
    """An engine on the same database runs its monitor: AMD gets a roll proposal."""
    settings = make_settings(tmp_path, PUTDESK_DATABASE_URL=env["PUTDESK_DATABASE_URL"])

    async def go() -> str:
        engine = sim_engine(settings, scenario)
        await engine.open()
        await engine.broker.connect()
        await engine.monitor_cycle()
        await engine.exits.settled()
        [p] = engine.rolls.find(("PENDING",))
        await engine.stop()
        return p.id

    return asyncio.run(go())


def test_rolls_list_then_approve(env, tmp_path):
    scenario = write(tmp_path, pressured_amd(), "amd.json")
    proposal_id = _propose(env, tmp_path, scenario)
    listed = json.loads(putdesk(env, "rolls", "--json").stdout)["rolls"]
    assert [(p["id"], p["status"]) for p in listed] == [(proposal_id, "PENDING")]
    assert {"net_credit", "buyback_cost", "new_premium", "new_strike", "new_expiration",
            "new_dte", "new_delta", "margin_change"} <= set(listed[0])
    r = putdesk(env | {"ORDER_TIMEOUT_SECONDS": "5"}, "roll", "approve", proposal_id[:8],
                "--json", "--scenario", str(scenario))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "EXECUTED"
    again = putdesk(env, "roll", "approve", proposal_id, "--scenario", str(scenario))
    assert again.returncode == 2 and "not PENDING" in again.stderr


def test_roll_reject(env, tmp_path):
    scenario = write(tmp_path, pressured_amd(), "amd.json")
    proposal_id = _propose(env, tmp_path, scenario)
    r = putdesk(env | {"ORDER_TIMEOUT_SECONDS": "5"}, "roll", "reject", proposal_id,
                "--json", "--scenario", str(scenario))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "REJECTED"


def test_unknown_roll_id_is_bad_input(env, tmp_path):
    r = putdesk(env, "roll", "approve", "nope", "--scenario",
                str(write(tmp_path, world())))
    assert r.returncode == 2 and "'nope' matches 0 roll proposals" in r.stderr
