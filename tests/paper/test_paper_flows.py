"""Issue 15's done-when flows: separate PutDesk processes with the default broker (the
paper gateway) see one account."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.paper.gateway import INFO_FILE, gateway_running
from tests.cli.run import putdesk
from tests.core.risk.worlds import world, write
from tests.paper.gateway_proc import env_for


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A data directory; the gateway a command started there is stopped afterwards."""
    home = tmp_path / "data"
    home.mkdir()
    yield home
    info = home / INFO_FILE
    if info.exists():
        pid = json.loads(info.read_text())["pid"]
        os.kill(pid, signal.SIGTERM)


def paper_env(home: Path) -> dict[str, str]:
    return env_for(home, PUTDESK_BROKER="paper", ORDER_REPRICE_INTERVAL_SECONDS="0.05",
                   ORDER_TIMEOUT_SECONDS="5")


def ok(r: object) -> dict:  # type: ignore[type-arg]
    assert r.returncode == 0, r.stderr  # type: ignore[attr-defined]
    return json.loads(r.stdout)  # type: ignore[attr-defined]


def test_check_stage_execute_positions_status_in_separate_processes_share_one_world(
        home: Path, tmp_path: Path) -> None:
    env = paper_env(home)
    scenario = str(write(tmp_path, world()))
    before = ok(putdesk(env, "status", "--json", "--scenario", scenario))
    assert before["broker"]["kind"] == "ibkr" and before["broker"]["connected"]
    assert gateway_running(home)  # the first process started it; it outlived that process
    margin_before = before["account"]["maint_margin_req"]
    staged = putdesk(env, "check", "KO", "68", "2026-12-31", "--stage", "--scenario", scenario)
    assert staged.returncode == 0, staged.stderr
    executed = ok(putdesk(env, "execute", "--json", "--scenario", scenario))
    assert [o["status"] for o in executed["orders"]] == ["FILLED"], executed
    positions = ok(putdesk(env, "positions", "--json", "--scenario", scenario))["positions"]
    assert [(p["symbol"], p["strike"], p["quantity"]) for p in positions] == [("KO", 68.0, -1)]
    after = ok(putdesk(env, "status", "--json", "--scenario", scenario))
    assert after["account"]["maint_margin_req"] > margin_before
    # One clock: the world's (the scenario's Tuesday), not this machine's date.
    assert after["now"].startswith("2026-11-24")
    # The audit trail, the halt and `--since` run on that clock too.
    ok(putdesk(env, "emergency-stop", "lunch", "--json"))
    ok(putdesk(env, "resume-trading", "--yes", "--json"))
    events = ok(putdesk(env, "audit", "--json", "--since", "1h"))["events"]
    kinds = {e["kind"] for e in events}
    assert {"halt", "resume", "risk_decision", "order_filled"} <= kinds, kinds
    assert all(e["ts"].startswith("2026-11-24") for e in events), [e["ts"] for e in events]
    # Read-only commands, any number of times, leave the trades as they are.
    trades = ok(putdesk(env, "performance", "--json"))
    for _ in range(2):
        ok(putdesk(env, "rolls", "--json"))
        assert ok(putdesk(env, "performance", "--json")) == trades


def test_a_command_asking_for_another_scenario_than_the_running_world_is_told_how_to_reset(
        home: Path, tmp_path: Path) -> None:
    env = paper_env(home)
    ok(putdesk(env, "status", "--json"))  # the demo world
    other = write(tmp_path, world(cash=5_000.0))
    r = putdesk(env, "positions", "--json", "--scenario", str(other))
    assert r.returncode == 1
    error = json.loads(r.stdout)["error"]  # --json: the failure is JSON on stdout
    assert error["code"] == "broker_unavailable"
    assert "serves a world made from" in error["message"]
    assert f"putdesk paper --reset --scenario {other}" in error["message"]


def test_a_command_on_a_corrupt_world_names_the_file_and_changes_nothing(home: Path) -> None:
    state = home / "paper-world.json"
    state.write_text("{half a world")
    r = putdesk(paper_env(home), "status", "--json")
    assert r.returncode == 1
    assert f"paper gateway: Paper world {state} is corrupt" in json.loads(r.stdout)[
        "error"]["message"]
    assert state.read_text() == "{half a world"
    assert not gateway_running(home)
