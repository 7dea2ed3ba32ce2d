"""Bad input gets exit 2 and a named error, never a traceback, a hang or a read until
memory runs out: numbers out of any sane range on the command line and in settings, and
scenario files that are no regular file or are above the size limit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.broker.scenario import demo_scenario_path
from tests.cli.run import putdesk


@pytest.mark.parametrize(("args", "settings", "named"), [
    (["check", "BA", "1e308", "2026-12-18"], {}, "STRIKE: 1e+308 must be greater than 0 and "
                                                 "at most 100,000"),
    (["check", "BA", "150", "2026-12-18", "--premium", "1e308"], {}, "--premium: 1e+308"),
    (["check", "BA", "150", "2026-12-18", "--contracts", "100000000"], {},
     "--contracts: 100000000 must be at most 10,000"),
    (["status"], {"PUTDESK_SIM_SEED": "-1"},
     "invalid setting: PUTDESK_SIM_SEED='-1': Input should be greater than or equal to 0"),
    (["status"], {"ORDER_TIMEOUT_SECONDS": "1e300"},
     "invalid setting: ORDER_TIMEOUT_SECONDS='1e300': Input should be less than or equal to"),
    (["status"], {"MONITOR_INTERVAL_MINUTES": "1e-9"},
     "invalid setting: MONITOR_INTERVAL_MINUTES='1e-9': Input should be greater than or "
     "equal to 1"),
    (["status", "--scenario", "/dev/zero"], {},
     "scenario: (file): /dev/zero is a character device, not a regular file"),
    (["status"], {"PUTDESK_SIM_SCENARIO": "/dev/zero"},
     "scenario: (file): /dev/zero is a character device, not a regular file"),
    (["status"], {"PUTDESK_SCENARIO_MAX_MB": "0.001"},
     f"scenario: (file): {demo_scenario_path()} is 9,"),
])
def test_out_of_range_input_exits_2_by_name(env, args, settings, named):
    r = putdesk(env | settings, *args, timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert named in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_a_fifo_scenario_is_refused_at_once(env, tmp_path):
    fifo = tmp_path / "world.json"
    os.mkfifo(fifo)
    r = putdesk(env, "status", "--scenario", str(fifo), timeout=30)  # it hung forever
    assert r.returncode == 2
    assert f"scenario: (file): {fifo} is a FIFO (named pipe), not a regular file" in r.stderr


def test_the_scenario_size_limit_is_configurable(env, tmp_path):
    big = tmp_path / "big.json"
    world = json.loads(demo_scenario_path().read_text())
    world["padding_is_refused_anyway"] = None
    big.write_text(json.dumps(world) + " " * 2_000_000)  # 2 MB of trailing blanks
    r = putdesk(env | {"PUTDESK_SCENARIO_MAX_MB": "1"}, "status", "--scenario", str(big))
    assert r.returncode == 2
    assert "above the limit of 1,048,576 (PUTDESK_SCENARIO_MAX_MB)" in r.stderr
    ok = tmp_path / "ok.json"
    ok.write_text(demo_scenario_path().read_text() + " " * 2_000_000)
    fine = putdesk(env | {"PUTDESK_SCENARIO_MAX_MB": "4"}, "status", "--json", "--scenario",
                   str(ok))
    assert fine.returncode == 0, fine.stderr


def test_a_file_that_grows_past_the_limit_while_read_is_refused(tmp_path):
    """The size is checked before the read and the read stops one byte past the limit."""
    from core.broker.scenario import ScenarioError, load_scenario

    path = Path(tmp_path / "w.json")
    path.write_bytes(b" " * 2048)
    with pytest.raises(ScenarioError, match="2,048 bytes, above the limit of 1,000"):
        load_scenario(path, max_bytes=1000)
