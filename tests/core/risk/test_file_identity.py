"""A running process notices its SQLite file deleted or replaced (the file's identity at
each kill-switch sync) and halts with a named reason; the halt reaches the file now at
the path, so a restart stays halted; a resume or another halt cannot undo it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from core.clock import ManualClock
from core.db.session import Database
from core.risk.kill_switch import KillSwitch
from tests.factories import T0


def remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@pytest.fixture
def running(tmp_path: Path) -> tuple[Path, Database, KillSwitch]:
    path = tmp_path / "putdesk.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    switch = KillSwitch(db, ManualClock(T0))
    assert not switch.sync().halted
    return path, db, switch


def restart(path: Path) -> KillSwitch:
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    switch = KillSwitch(db, ManualClock(T0))
    switch.sync()
    return switch


def test_a_deleted_file_halts_the_running_process(running):
    path, _db, switch = running
    seen = []
    switch.add_listener(seen.append)
    remove(path)
    state = switch.sync()
    assert state.halted and not state.persisted
    assert state.reason.startswith(f"Database file deleted under this process: {path}")
    assert "restart PutDesk" in state.reason
    assert [s.halted for s in seen] == [True]
    assert switch.sync().halted  # for good
    assert not path.exists()  # nothing is created where the file was


def test_a_replaced_file_halts_and_the_new_file_carries_the_halt(running, tmp_path):
    path, _db, switch = running
    other = tmp_path / "other.db"
    made = Database(f"sqlite:///{other}")
    made.upgrade()
    made.dispose()  # checkpointed into the file: the copy is whole without its -wal
    remove(path)
    shutil.move(other, path)  # a restore from a copy, a stray `cp`, a new deploy
    state = switch.sync()
    assert state.halted
    assert state.reason.startswith(f"Database file replaced under this process: {path}")
    # the CLI's halt went to the new file while the console kept trading; now the
    # console's halt is in the new file too, and a restart reads it
    after = restart(path).state
    assert after.halted and after.reason == state.reason


def test_resume_and_halt_do_not_write_through_the_lost_file(running):
    path, _db, switch = running
    remove(path)
    switch.sync()
    with pytest.raises(RuntimeError, match="Not resumed: Database file deleted"):
        switch.resume("cli alice")
    state = switch.halt("operator halt", "console bob")
    assert state.halted and state.reason.startswith("Database file deleted")


def test_halt_notices_a_replacement_before_writing(running, tmp_path):
    """A halt right after the swap (before any sync) must not go into the old file."""
    path, _db, switch = running
    other = tmp_path / "other.db"
    made = Database(f"sqlite:///{other}")
    made.upgrade()
    made.dispose()  # checkpointed into the file: the copy is whole without its -wal
    os.replace(other, path)
    state = switch.halt("VIX 45", "console bob")
    assert state.halted and "replaced" in state.reason
    assert restart(path).state.halted


def test_an_unchanged_file_and_postgres_style_urls_are_left_alone(running):
    _path, db, switch = running
    for _ in range(3):
        assert not switch.sync().halted
    assert Database("sqlite:///:memory:").file_identity is None
    assert db.file_identity == db.current_file_identity()
