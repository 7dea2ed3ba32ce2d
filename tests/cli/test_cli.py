"""The `putdesk` command as an operator runs it: real processes, a shared database."""

import json
from pathlib import Path

import pytest

from tests.cli.run import putdesk


def test_kill_switch_round_trip_across_processes(env):
    r = putdesk(env, "emergency-stop", "VIX spike, stepping away", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["halted"] is True

    status = putdesk(env, "status", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["halted"] is True
    assert data["halt_reason"] == "VIX spike, stepping away"
    assert data["broker"]["kind"] == "sim" and data["broker"]["connected"] is True
    assert data["account"]["net_liquidation"] > 0
    assert "TRADING HALTED: VIX spike, stepping away" in Path(
        env["PUTDESK_LOG_FILE"]).read_text()

    refused = putdesk(env, "resume-trading", stdin="")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert json.loads(putdesk(env, "status", "--json").stdout)["halted"] is True

    resumed = putdesk(env, "resume-trading", "--yes", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(putdesk(env, "status", "--json").stdout)["halted"] is False


def test_status_human_output_shows_halt(env):
    putdesk(env, "emergency-stop", "checking")
    out = putdesk(env, "status")
    assert out.returncode == 0, out.stderr
    assert "TRADING HALTED" in out.stdout and "checking" in out.stdout


def test_calendar_christmas_is_closed(env):
    r = putdesk(env, "calendar", "--at", "2026-12-25T11:00-05:00", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["session"] == "CLOSED" and data["reason"] == "holiday"
    assert data["next_open"].startswith("2026-12-28T09:30")


def test_calendar_naive_time_is_new_york(env):
    data = json.loads(putdesk(env, "calendar", "--at", "2026-11-24T09:45", "--json").stdout)
    assert data["session"] == "REGULAR"


@pytest.mark.parametrize(
    ("args", "extra_env", "message"),
    [
        (["calendar", "--at", "yesterday"], {}, "--at: not an ISO date/time"),
        (["status"], {"BARCHART_DTE_MIN": "-3"}, "BARCHART_DTE_MIN='-3'"),
        (["status"], {"BARCHART_OTM_PCT_MAX": "0.05"},
         "BARCHART_OTM_PCT_MIN=0.1 is greater than BARCHART_OTM_PCT_MAX=0.05"),
        (["status", "--scenario", "/nonexistent/world.json"], {}, "file not found"),
        (["status"], {"PUTDESK_BROKER": "tws"}, "PUTDESK_BROKER='tws'"),
    ],
)
def test_bad_input_exits_2_with_a_named_error(env, args, extra_env, message):
    r = putdesk(env | extra_env, *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_bad_scenario_file_names_the_json_path(env, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "now": "2026-11-24T10:30:00-05:00",
                               "account": {"id": "DU1", "cash": 1000.0},
                               "underlyings": {"AAPL": {"price": -5, "iv": 0.3}}}))
    r = putdesk(env, "status", "--scenario", str(bad))
    assert r.returncode == 2
    assert "underlyings.AAPL.price" in r.stderr
    assert "Traceback" not in r.stderr


def test_db_upgrade(env):
    r = putdesk(env, "db", "upgrade", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["revision"] == "0010"
    assert data["database"].startswith("sqlite:///")


def test_ibkr_unreachable_status_still_reports_halt_state(env):
    r = putdesk(env | {"PUTDESK_BROKER": "ibkr", "PUTDESK_IBKR_PORT": "1",
                       "PUTDESK_IBKR_CONNECT_TIMEOUT": "1"}, "status", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["broker"]["connected"] is False
    assert "127.0.0.1:1" in data["broker"]["error"]
    assert data["halted"] is False


def test_the_console_with_a_bad_setting_exits_2_naming_it(env):
    """The console reads its settings after the first frame; a bad one still ends it
    with exit code 2 and the variable's name (on stderr, once the terminal is back)."""
    r = putdesk(env | {"BARCHART_DTE_MIN": "-3"}, stdin="", timeout=60)
    assert r.returncode == 2, (r.stdout[-500:], r.stderr[-500:])
    assert "putdesk: " in r.stderr and "BARCHART_DTE_MIN='-3'" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
