"""The log reaches stderr only when asked (-v INFO, -vv DEBUG) or for a warning about
the command that its output does not already show; the log file keeps everything."""

from pathlib import Path

from tests.cli.run import putdesk
from tests.cli.test_scan import CSV, WORLD

BLOCKED = "BLOCKED: NVDA has earnings on 2026-12-02, within DTE window"


def test_scan_stderr_is_clean_by_default_and_shows_the_log_with_v(env):
    quiet = putdesk(env | {"COLUMNS": "200"}, "scan", "--csv", str(CSV), "--scenario",
                    str(WORLD))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert BLOCKED in quiet.stdout  # the earnings block is a Rejected row
    assert BLOCKED in Path(env["PUTDESK_LOG_FILE"]).read_text()  # and in the log file

    verbose = putdesk(env, "scan", "--csv", str(CSV), "--scenario", str(WORLD), "-v",
                      "--json")
    assert verbose.returncode == 0, verbose.stderr
    assert f"WARNING  putdesk.screening: {BLOCKED}" in verbose.stderr
    assert "INFO     putdesk.screening.filters: Filtered" in verbose.stderr
    assert " DEBUG " not in verbose.stderr

    debug = putdesk(env, "scan", "--csv", str(CSV), "--scenario", str(WORLD), "-vv",
                    "--json")
    assert " DEBUG " in debug.stderr
    # -vv is for the terminal: the file keeps its configured level (INFO)
    assert " DEBUG " not in Path(env["PUTDESK_LOG_FILE"]).read_text()


def test_a_warning_about_the_command_still_reaches_stderr(env, tmp_path):
    """PutDesk's own warnings that the output does not carry are shown without -v."""
    from tests.core.risk.worlds import world, write

    scenario = str(write(tmp_path, world(now="2026-11-28T11:00:00-05:00"), "sat.json"))
    putdesk(env, "check", "KO", "68", "2026-12-31", "--stage", "--scenario", scenario)
    r = putdesk(env, "execute", "--scenario", scenario)
    assert r.returncode == 1
    assert "WARNING  putdesk.execution" in r.stderr and "not sent" in r.stderr, r.stderr
