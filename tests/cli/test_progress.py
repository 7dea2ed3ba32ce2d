"""`putdesk execute` and `putdesk roll approve|reject` say each step as it happens (they
can work an order for minutes): on stdout, or on stderr with --json so stdout stays one
JSON document. The simulator fills, so every step is real."""

from __future__ import annotations

import json
import re

from tests.cli.run import putdesk
from tests.cli.test_execute import FAST
from tests.cli.test_positions_rolls import _propose
from tests.core.monitoring.test_monitoring import pressured_amd
from tests.core.risk.worlds import world, write

STEP = re.compile(r"^\d\d:\d\d:\d\d ", re.MULTILINE)


def test_execute_prints_each_step_before_the_summary(env, tmp_path):
    env = env | FAST
    scenario = str(write(tmp_path, world(), "w.json"))
    putdesk(env, "check", "KO", "68", "2026-12-31", "--stage", "--scenario", scenario)
    r = putdesk(env | {"COLUMNS": "80"}, "execute", "--scenario", scenario)
    assert r.returncode == 0, r.stderr
    steps = [line for line in r.stdout.splitlines() if STEP.match(line)]
    assert "Re-checking 1 staged order with live data, then sending" in steps[0]
    assert steps[1].endswith("KO 2026-12-31 68P (open) SENDING: Sending 1 contract")
    assert re.search(r"KO 2026-12-31 68P \(open\) WORKING: Working at \$\d+\.\d\d$", steps[2])
    assert re.search(r"FILLED: Filled 1 at \$\d+\.\d\d$", steps[-1]), steps
    # the steps come as they happen, before the summary table
    assert r.stdout.index(steps[-1]) < r.stdout.index("Sent (1)")


def test_with_json_the_steps_go_to_stderr(env, tmp_path):
    env = env | FAST
    scenario = str(write(tmp_path, world(), "w.json"))
    putdesk(env, "check", "KO", "68", "2026-12-31", "--stage", "--scenario", scenario)
    r = putdesk(env, "execute", "--json", "--scenario", scenario)
    assert r.returncode == 0, r.stderr
    [order] = json.loads(r.stdout)["orders"]  # stdout: the one JSON document
    assert order["status"] == "FILLED"
    assert "(open) SENDING: Sending 1 contract" in r.stderr
    assert "(open) FILLED: Filled 1 at $" in r.stderr


def test_roll_approve_and_reject_say_their_steps(env, tmp_path):
    scenario = write(tmp_path, pressured_amd(), "amd.json")
    proposal_id = _propose(env, tmp_path, scenario)
    r = putdesk(env | {"ORDER_TIMEOUT_SECONDS": "5"}, "roll", "approve", proposal_id[:8],
                "--json", "--scenario", str(scenario))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "EXECUTED"
    steps = [line for line in r.stderr.splitlines() if STEP.match(line)]
    assert f"Roll {proposal_id[:8]} AMD 20261204 200 P" in steps[0], steps
    assert "approved, sending the combo" in steps[0]
    # every step, in order: the listener reads right after each ledger write
    assert [s.split(" (roll) ")[1].split(":")[0] for s in steps[1:]] == [
        "SENDING", "WORKING", "FILLED"], steps
    assert "(roll) WORKING: Combo working at $" in steps[2], steps


def test_roll_reject_says_it_closes(env, tmp_path):
    scenario = write(tmp_path, pressured_amd(), "amd.json")
    proposal_id = _propose(env, tmp_path, scenario)
    r = putdesk(env | {"ORDER_TIMEOUT_SECONDS": "5"}, "roll", "reject", proposal_id,
                "--scenario", str(scenario))
    assert r.returncode == 0, r.stderr
    steps = [line for line in r.stdout.splitlines() if STEP.match(line)]
    assert "rejected; closing the position if its exit rule says so" in steps[0], steps
    assert any("(close) " in s for s in steps[1:]), r.stdout
