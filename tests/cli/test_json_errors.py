"""With --json a failure is one JSON object on stdout, {"error": {"code", "message"}},
with a stable code and the exit code of the plain-text run; stderr carries no
"putdesk: ..." line then, so stdout is always one JSON document."""

from __future__ import annotations

import json

import pytest

from tests.cli.run import putdesk
from tests.core.risk.worlds import world, write


def _error(r) -> dict[str, str]:
    document = json.loads(r.stdout)  # the whole of stdout is one JSON document
    assert set(document) == {"error"}, document
    assert set(document["error"]) == {"code", "message"}, document
    assert "putdesk:" not in r.stderr, r.stderr
    return document["error"]


@pytest.mark.parametrize(("args", "settings", "exit_code", "code", "message"), [
    # a usage error caught by the parser, before the command runs
    (["check", "KO", "68", "--json"], {}, 2, "bad_input", "Missing argument"),
    (["check", "KO", "68", "2026-12-31", "--contracts", "x", "--json"], {}, 2, "bad_input",
     "--contracts"),
    (["check", "KO", "1e308", "2026-12-31", "--json"], {}, 2, "bad_input",
     "STRIKE: 1e+308 must be greater than 0"),
    (["roll", "approve", "nope", "--json"], {}, 2, "not_found",
     "'nope' matches 0 roll proposals"),
    (["execute", "putdesk-nope", "--json"], {}, 2, "not_found",
     "not a STAGED order: putdesk-nope"),
    (["status", "--json"], {"PUTDESK_SIM_SEED": "-1"}, 2, "bad_setting",
     "invalid setting: PUTDESK_SIM_SEED='-1'"),
    (["orders", "--json"], {"PUTDESK_DATABASE_URL": "DIRECTORY"}, 1, "database", "sqlite"),
    (["resume-trading", "--json"], {"PUTDESK_READ_ONLY": "true"}, 1, "read_only",
     "resuming trading is disabled"),
])
def test_json_failures_are_one_json_object_with_a_code(env, tmp_path, args, settings,
                                                        exit_code, code, message):
    scenario = str(write(tmp_path, world(), "w.json"))
    if settings.get("PUTDESK_DATABASE_URL") == "DIRECTORY":  # a database that cannot open
        settings = {"PUTDESK_DATABASE_URL": f"sqlite:///{tmp_path}"}
    r = putdesk(env | {"PUTDESK_SIM_SCENARIO": scenario} | settings, *args)
    assert r.returncode == exit_code, (r.stdout, r.stderr)
    error = _error(r)
    assert error["code"] == code, error
    assert message in error["message"], error


def test_without_json_the_same_failure_is_text_on_stderr(env, tmp_path):
    r = putdesk(env, "roll", "approve", "nope", "--scenario",
                str(write(tmp_path, world(), "w.json")))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("putdesk: ID: 'nope' matches 0 roll proposals"), r.stderr


def test_execute_while_halted_keeps_its_result_and_says_halted(env, tmp_path):
    scenario = str(write(tmp_path, world(), "w.json"))
    staged = putdesk(env, "check", "KO", "68", "2026-12-31", "--stage", "--scenario", scenario)
    assert staged.returncode == 0, staged.stderr
    assert putdesk(env, "emergency-stop", "test").returncode == 0
    r = putdesk(env, "execute", "--json", "--scenario", scenario)
    assert r.returncode == 1, r.stderr
    document = json.loads(r.stdout)
    [order] = document["orders"]
    assert order["status"] == "STAGED"  # kept for after the resume
    assert document["error"]["code"] == "halted", document
    assert order["order_ref"] in document["error"]["message"]
