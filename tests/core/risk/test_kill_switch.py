import logging

from core.clock import ManualClock
from core.db.repos import AuditRepo, SystemStateRepo
from core.db.session import Database
from core.risk.kill_switch import HALT_KEY, KillSwitch
from tests.factories import T0


def other_process(db: Database) -> KillSwitch:
    """A second KillSwitch on its own connection pool: what another process sees."""
    switch = KillSwitch(Database(db.url), ManualClock(T0))
    switch.sync()
    return switch


def test_halt_persists_and_is_seen_by_another_process(db, caplog):
    switch = KillSwitch(db, ManualClock(T0))
    switch.sync()
    assert not switch.state.halted
    with caplog.at_level(logging.CRITICAL, logger="putdesk.kill_switch"):
        switch.halt("Weekly loss limit exceeded", "cli alice@desk")
    assert "TRADING HALTED: Weekly loss limit exceeded" in caplog.text
    seen = other_process(db).state
    assert seen.halted and seen.persisted
    assert seen.reason == "Weekly loss limit exceeded"
    assert seen.by == "cli alice@desk"
    assert seen.since == T0


def test_resume_clears_for_everyone_and_is_audited(db):
    switch = KillSwitch(db, ManualClock(T0))
    switch.halt("test", "console bob")
    other = other_process(db)
    other.resume("cli carol")
    assert not switch.sync().halted
    kinds = [(e.kind, e.actor) for e in AuditRepo(db).list()]
    assert ("halt", "console bob") in kinds and ("resume", "cli carol") in kinds


def test_halt_rereads_the_database_before_deciding(db):
    """A stale in-memory 'halted' must not swallow a new halt after another process resumed."""
    console = KillSwitch(db, ManualClock(T0))
    console.halt("first", "console")
    other_process(db).resume("cli")  # console has not synced yet
    console.halt("second", "console")
    assert other_process(db).state.reason == "second"


def test_second_halt_keeps_the_first_reason(db):
    switch = KillSwitch(db, ManualClock(T0))
    switch.halt("Max drawdown exceeded", "governor")
    switch.halt("Signal SIGHUP received", "signal")
    assert other_process(db).state.reason == "Max drawdown exceeded"


def test_unreadable_row_counts_as_halted(db):
    SystemStateRepo(db).set(HALT_KEY, "{not json", T0)
    state = KillSwitch(db, ManualClock(T0)).sync()
    assert state.halted and "unreadable" in state.reason


def test_database_failure_on_sync_halts_this_process(tmp_path):
    path = tmp_path / "k.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    switch = KillSwitch(db, ManualClock(T0))
    switch.sync()
    db.dispose()
    path.write_bytes(b"this is not a database" * 100)
    state = switch.sync()
    assert state.halted and not state.persisted
    assert "unreadable" in state.reason


def test_listeners_hear_changes_once(db):
    switch = KillSwitch(db, ManualClock(T0))
    heard = []
    switch.add_listener(lambda s: heard.append(s.halted))
    switch.sync()
    switch.halt("x", "t")
    switch.sync()
    switch.resume("t")
    assert heard == [True, False]
