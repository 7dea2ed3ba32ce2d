"""`putdesk --read-only` / PUTDESK_READ_ONLY from the shell: order commands and resume
refuse with the reason (exit 1); halting works."""

import json

from tests.cli.run import putdesk


def test_read_only_refuses_orders_and_resume_but_halts(env):
    sent = putdesk(env, "--read-only", "execute", "--json")
    assert sent.returncode == 1
    error = json.loads(sent.stdout)["error"]  # --json: the failure is JSON on stdout
    assert error["code"] == "read_only"
    assert "Read-only console: orders are disabled" in error["message"]
    assert "Traceback" not in sent.stderr

    halted = putdesk(env | {"PUTDESK_READ_ONLY": "true"}, "emergency-stop", "watcher")
    assert halted.returncode == 0, halted.stderr
    resumed = putdesk(env | {"PUTDESK_READ_ONLY": "true"}, "resume-trading", "--yes")
    assert resumed.returncode == 1 and "resuming trading is disabled" in resumed.stderr
    status = putdesk(env, "status", "--json")
    assert '"halted": true' in status.stdout
