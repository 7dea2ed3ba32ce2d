"""The database locked or unavailable, at start and while the engine runs. Locks are real
SQLite locks held by another process; "unavailable" is a PostgreSQL URL whose server is
not there (at start) or that stops taking connections (mid-run).

Named outcomes and log lines:
- locked / unavailable at start: the command exits 1 with the database (password
  hidden) and the driver's reason on stderr — "putdesk: Database sqlite:///...
  unusable: ...: database is locked" — and no traceback; in process, EngineError.
- locked for writes mid-run: new orders halt in memory, reason "Database unavailable:
  database is locked" — logged "Database unavailable: database is locked (while ...): new
  orders halted until it answers"; the staged order is not sent and stays STAGED ("Not
  sent: trading halted: ..." or, locked at the claim itself, "Order <ref> not sent, stays
  STAGED: Not sent: database unavailable (database is locked)"); once
  the database takes a write again the halt lifts — "Database available again: lifting
  the halt (...)" — and the order goes out, once.
- an operator's halt while the database is locked stays in force here, and is written
  as soon as the database answers ("Halt persisted now that the database answers"), so
  a later read of the old row never undoes it and other processes then see it.
- a reconnect while the database is locked still connects (it used to end the
  reconnect task); trading halts until the database answers, then the reconcile runs.
- unreadable mid-run (PostgreSQL refusing connections): halted — "Kill switch state
  unreadable (...): treating trading as halted" — nothing sent; lifted at the first read
  that succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest import LogCaptureFixture as Caplog
from pytest import MonkeyPatch
from sqlalchemy import create_engine, text

from core.db.session import Database
from core.engine import Engine, EngineError
from core.execution.staging import StagingError
from core.risk.kill_switch import KillSwitch
from tests.cli.conftest import env
from tests.cli.run import putdesk
from tests.core.risk.worlds import write
from tests.factories import make_settings, sim_engine
from tests.faults.conftest import (
    FAULTS,
    broker_orders,
    current,
    dead_port,
    eventually,
    messages,
    quoted,
    sim,
    stage,
)

__all__ = ["env"]

Running = Callable[..., Awaitable[Engine]]

HOLDER = """
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
if sys.argv[2] == "exclusive":  # no reader gets in either
    c.execute("PRAGMA locking_mode=EXCLUSIVE")
    c.execute("BEGIN EXCLUSIVE")
    c.execute("CREATE TABLE IF NOT EXISTS lock_holder (x)")
else:  # a writer's lock: readers go on, writers wait
    c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
c.execute("ROLLBACK")
"""


@contextlib.contextmanager
def sqlite_lock(path: Path, mode: str = "write") -> Iterator[None]:
    """Another process holds a lock on the SQLite file until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=10)


def db_file(engine: Engine) -> Path:
    return Path(engine.db.url.removeprefix("sqlite:///"))


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    """make(world, **settings) -> a started engine (loops on) whose SQLite waits 0.3 s
    for a lock; the kill switch re-read every 0.1 s."""
    engines: list[Engine] = []

    async def make(data: dict[str, Any] | None = None, **overrides: str) -> Engine:
        settings = make_settings(tmp_path, **{**FAULTS, "PUTDESK_KILL_SWITCH_SYNC_SECONDS": "0.1",
                                              **overrides})
        engine = sim_engine(settings, write(tmp_path, data or quoted(1.00, 1.02),
                                            f"w{len(engines)}.json"), busy_timeout=0.3)
        engines.append(engine)
        await engine.start()
        return engine

    yield make
    for engine in engines:
        await engine.stop()


# --- at start --------------------------------------------------------------------------


def test_sqlite_locked_at_start_exits_1_with_the_reason(env: dict[str, str],
                                                        tmp_path: Path) -> None:
    path = tmp_path / "putdesk.db"
    with sqlite_lock(path, "exclusive"):
        run = putdesk(env, "positions")
    assert run.returncode == 1
    assert run.stderr.startswith(f"putdesk: Database sqlite:///{path} unusable: ")
    assert run.stderr.rstrip().endswith("database is locked")
    assert "Traceback" not in run.stderr + run.stdout


def test_postgres_unreachable_at_start_exits_1_with_the_reason(env: dict[str, str]) -> None:
    url = f"postgresql+psycopg://putdesk:pw-s3cret@127.0.0.1:{dead_port()}/putdesk"
    run = putdesk(env | {"PUTDESK_DATABASE_URL": url}, "positions")
    assert run.returncode == 1
    assert run.stderr.startswith("putdesk: Database postgresql+psycopg://putdesk:***@127.0.0.1:")
    assert "Connection refused" in run.stderr
    assert "pw-s3cret" not in run.stderr + run.stdout
    assert "Traceback" not in run.stderr + run.stdout


async def test_locked_at_start_in_process_is_an_engine_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    engine = sim_engine(settings, busy_timeout=0.3)
    with sqlite_lock(db_file(engine), "exclusive"), pytest.raises(EngineError) as err:
        await engine.open()
    assert str(err.value).endswith("database is locked")
    assert str(err.value).startswith(f"Database {engine.db.redacted_url} unusable")
    engine.db.dispose()


# --- mid-run ---------------------------------------------------------------------------


async def test_locked_mid_run_halts_new_orders_then_recovers(
        running: Running, caplog: Caplog) -> None:
    engine = await running()
    row = await stage(engine, 1.01)
    with sqlite_lock(db_file(engine)):
        [(_row, result)] = await engine.execute()
        reason = "Database unavailable: database is locked"
        # The first write refused is the re-check's audit row: halted before the claim.
        assert result.reason == f"Not sent: trading halted: {reason}"
        assert engine.kill_switch.state.halted and engine.kill_switch.state.reason == reason
        assert not engine.kill_switch.state.persisted
        assert any(m.startswith(f"{reason} (while ") and m.endswith(
            "): new orders halted until it answers") for m in messages(caplog))
        assert broker_orders(engine, row.order_ref) == []
        await asyncio.sleep(0.5)  # syncs meanwhile: still locked, still halted
        assert engine.kill_switch.state.reason == reason
        assert await engine.execute() != [] and broker_orders(engine, row.order_ref) == []
    await eventually(lambda: not engine.kill_switch.state.halted)
    assert f"Database available again: lifting the halt ({reason})" in messages(caplog)
    assert current(engine, row).status == "STAGED"
    [(_row, result)] = await engine.execute()
    assert result.outcome == "FILLED"
    assert len(broker_orders(engine, row.order_ref)) == 1
    assert not any("Traceback" in m for m in messages(caplog))


async def test_locked_at_the_claim_nothing_is_sent_it_stays_staged(
        running: Running, caplog: Caplog, monkeypatch: MonkeyPatch) -> None:
    """The lock is taken between the re-check and the claim (STAGED -> SENDING)."""
    engine = await running()
    row = await stage(engine, 1.01)
    real, lock = engine.staged.claim, contextlib.ExitStack()

    def locked_claim(*args: Any) -> bool:
        lock.enter_context(sqlite_lock(db_file(engine)))
        return real(*args)

    monkeypatch.setattr(engine.staged, "claim", locked_claim)
    with lock:
        [(_row, result)] = await engine.execute()
        assert result.reason == "Not sent: database unavailable (database is locked)"
        assert (f"Order {row.order_ref} not sent, stays STAGED: Not sent: database "
                "unavailable (database is locked)") in messages(caplog)
        assert engine.kill_switch.held
        assert broker_orders(engine, row.order_ref) == []
    await eventually(lambda: not engine.kill_switch.state.halted)
    assert current(engine, row).status == "STAGED"


async def test_a_halt_while_locked_stays_and_is_written_when_the_database_answers(
        running: Running, caplog: Caplog) -> None:
    engine = await running()
    other = KillSwitch(Database(engine.db.url), engine.wall_clock)  # another process
    with sqlite_lock(db_file(engine)):
        with pytest.raises(Exception, match="database is locked"):
            engine.halt("stepping away", "operator")
        assert engine.kill_switch.state.halted
        await asyncio.sleep(0.5)  # the old row says "not halted": it must not win
        assert engine.kill_switch.state.halted
        assert engine.kill_switch.state.reason == "stepping away"
        assert not other.sync().halted
    await eventually(lambda: engine.kill_switch.state.persisted)
    assert engine.kill_switch.state.reason == "stepping away"
    assert "Halt persisted now that the database answers: stepping away" in messages(caplog)
    seen = other.sync()
    assert seen.halted and seen.reason == "stepping away"
    [audit] = engine.audit.list(kinds=["halt"])
    assert audit.message == ("Trading halted: stepping away (persisted late: the database "
                             "was unavailable)")


async def test_reconnect_while_locked_connects_halts_then_reconciles(
        running: Running, caplog: Caplog) -> None:
    engine = await running()
    before = len(engine.audit.list(kinds=["reconcile"]))
    engine.margin.health = None  # the reconnect's account check writes equity
    with sqlite_lock(db_file(engine)):
        sim(engine).drop_connection("dropped")
        await eventually(lambda: engine.broker.connected and engine.kill_switch.held)
        assert any(m.endswith("(while reconciling after the connect): new orders halted "
                              "until it answers") for m in messages(caplog))
    await eventually(lambda: not engine.kill_switch.state.halted)
    await eventually(lambda: len(engine.audit.list(kinds=["reconcile"])) > before)


@pytest.mark.postgres
async def test_postgres_refusing_connections_mid_run_halts_until_it_answers(
        pg_url: str, tmp_path: Path, caplog: Caplog) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = pg_url.rsplit("/", 1)[0] + f"/{name}"
    settings = make_settings(tmp_path, **FAULTS, PUTDESK_DATABASE_URL=url,
                             PUTDESK_KILL_SWITCH_SYNC_SECONDS="0.1")
    engine = sim_engine(settings, write(tmp_path, quoted(1.00, 1.02)))
    await engine.start()
    try:
        row = await stage(engine, 1.01)
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              f"WHERE datname = '{name}'"))
        await eventually(lambda: engine.kill_switch.state.halted)
        assert engine.kill_switch.state.reason.startswith("Kill switch state unreadable")
        assert any(m.startswith("Kill switch state unreadable (") and m.endswith(
            "treating trading as halted") for m in messages(caplog))
        with pytest.raises(StagingError, match=r"^Not sent: database unavailable \("):
            await engine.execute()
        assert broker_orders(engine, row.order_ref) == []
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        await eventually(lambda: not engine.kill_switch.state.halted)
        [(_row, result)] = await engine.execute()
        assert result.outcome == "FILLED" and len(broker_orders(engine, row.order_ref)) == 1
    finally:
        await engine.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()



def test_a_database_failure_inside_a_cli_command_is_named_not_a_traceback(
        monkeypatch, capsys) -> None:
    """A command whose own database read fails after it started (e.g. `putdesk execute`
    listing staged orders) exits 1 with the driver's reason."""
    import pytest
    from sqlalchemy.exc import OperationalError

    import console.cli as cli

    def locked(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("SELECT * FROM staged_orders", {},
                               Exception("database is locked"))

    monkeypatch.setattr(cli, "app", locked)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("putdesk: database unavailable: database is locked.")
    assert "Traceback" not in err and "SELECT" not in err
