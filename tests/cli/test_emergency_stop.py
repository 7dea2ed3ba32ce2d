"""A halt that always lands: `putdesk emergency-stop` writes the halt at any schema
revision (every revision in the script directory, a half-migrated database, a revision
newer than the code), notifies like the console, and prints HALTED or NOT HALTED with
the reason and exit 1. Every other command names an unknown revision."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from core.clock import SystemClock
from core.db.session import Database, head_revision, script_directory
from core.risk.kill_switch import KillSwitch
from tests.cli.run import putdesk
from tests.http_server import Reply, http_server

REVISIONS = [s.revision for s in reversed(list(script_directory().walk_revisions()))]


def halt_after_upgrade(url: str) -> tuple[bool, str]:
    db = Database(url)
    db.upgrade()
    switch = KillSwitch(db, SystemClock())
    state = switch.sync()
    db.dispose()
    return state.halted, state.reason


def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/putdesk.db"


@pytest.mark.parametrize("revision", REVISIONS)
def test_the_halt_lands_at_every_revision_and_survives_the_upgrade(env, tmp_path, revision):
    db = Database(db_url(tmp_path))
    db.upgrade(revision)
    db.dispose()
    r = putdesk(env, "emergency-stop", f"stop at {revision}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"HALTED: stop at {revision}")
    assert Database(db_url(tmp_path)).current_revision() == revision  # no upgrade first
    assert halt_after_upgrade(db_url(tmp_path)) == (True, f"stop at {revision}")


def test_a_half_migrated_database_is_halted(env, tmp_path):
    """The issue's case: 0005 with 0006's column already there (an old driver committed
    each DDL step): every command failed for good, emergency-stop included."""
    db = Database(db_url(tmp_path))
    db.upgrade("0005")
    with db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE equity_snapshots ADD COLUMN excess_liquidity FLOAT"))
    db.dispose()
    r = putdesk(env, "emergency-stop", "half way")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HALTED: half way")
    status = putdesk(env, "status")
    assert status.returncode == 1
    assert "duplicate column name: excess_liquidity" in status.stderr
    assert "Traceback" not in status.stderr


def test_a_newer_revision_is_halted_and_named_by_every_command(env, tmp_path):
    db = Database(db_url(tmp_path))
    db.upgrade()
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    db.dispose()
    r = putdesk(env, "emergency-stop", "rolled back the code", "--json")
    assert r.returncode == 0, r.stderr
    assert '"halted": true' in r.stdout
    for args in (["status"], ["audit"], ["db", "upgrade"], ["orders"], ["positions"],
                 ["resume-trading", "--yes"], ["scan", "--csv",
                                               str(Path(__file__).parents[1] / "data" /
                                                   "barchart-main-view.csv")]):
        out = putdesk(env, *args)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert "revision 0099, which this PutDesk does not know" in out.stderr, args
        assert f"knows up to {head_revision()}" in out.stderr
        assert "Traceback" not in out.stderr, args
    # and the halt is there for the newer code that knows the schema
    with Database(db_url(tmp_path)).engine.connect() as conn:
        value = conn.execute(text("SELECT value FROM system_state WHERE key = "
                                  "'trading_halted'")).scalar()
    assert "rolled back the code" in value


def test_a_stop_that_cannot_land_says_not_halted_and_notifies(env, tmp_path):
    with http_server({"/hook": lambda req: Reply(200, {})}) as hook:
        broken = env | {"PUTDESK_DATABASE_URL": f"sqlite:///{tmp_path}",  # a directory
                        "NOTIFY_WEBHOOK_URL": f"{hook.url}/hook",
                        "NOTIFY_WEBHOOK_KIND": "json"}
        r = putdesk(broken, "emergency-stop", "no database")
        assert r.returncode == 1
        assert "putdesk: NOT HALTED: " in r.stderr
        assert "HALTED:" not in r.stdout
        assert "Traceback" not in r.stderr
        # one outcome line: the log record of the failure goes to the file, not again here
        last, = r.stderr.strip().splitlines()
        assert last == (f"putdesk: NOT HALTED: Database sqlite:///{tmp_path}: unable to "
                        "open database file")
        assert "CRITICAL putdesk.cli: NOT HALTED" in (tmp_path / "putdesk.log").read_text()
        assert [q.json()["message"] for q in hook.requests] == [
            "EMERGENCY STOP FAILED, " + last.removeprefix("putdesk: ")]


def test_the_cli_stop_notifies_like_the_console(env, tmp_path):
    with http_server({"/hook": lambda req: Reply(200, {})}) as hook:
        r = putdesk(env | {"NOTIFY_WEBHOOK_URL": f"{hook.url}/hook",
                           "NOTIFY_WEBHOOK_KIND": "json"}, "emergency-stop", "VIX 45")
        assert r.returncode == 0, r.stderr
        sent = [q.json() for q in hook.requests]
        assert len(sent) == 1
        assert sent[0]["event"] == "halt" and sent[0]["severity"] == "CRITICAL"
        assert sent[0]["message"] == "TRADING HALTED: VIX 45"
        # halted already: the first reason stays, nobody is told twice
        again = putdesk(env | {"NOTIFY_WEBHOOK_URL": f"{hook.url}/hook"},
                        "emergency-stop", "again")
        assert again.returncode == 0
        assert again.stdout.startswith("HALTED (already): VIX 45")
        assert len(hook.requests) == 1


def test_a_stop_and_a_resume_print_one_outcome_line(env, tmp_path):
    """HALTED on stdout is the outcome: the kill switch's own CRITICAL record of it is for
    the log file, not a second line on the terminal. Resuming likewise."""
    r = putdesk(env, "emergency-stop", "one line")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("HALTED: one line")
    assert len(r.stdout.splitlines()) == 1
    assert r.stderr == ""
    assert "CRITICAL putdesk.kill_switch: TRADING HALTED: one line" in (
        tmp_path / "putdesk.log").read_text()
    resumed = putdesk(env, "resume-trading", "--yes")
    assert (resumed.returncode, resumed.stdout, resumed.stderr) == (0, "Trading resumed.\n", "")
    assert "WARNING  putdesk.kill_switch: Trading resumed by cli" in (
        tmp_path / "putdesk.log").read_text()


def test_a_bad_setting_says_not_halted(env):
    r = putdesk(env | {"MAX_POSITIONS": "many"}, "emergency-stop", "x")
    assert r.returncode == 2
    assert r.stderr.startswith("putdesk: NOT HALTED: invalid setting: MAX_POSITIONS")
