"""The kill switch (spec 8.2): a persistent, multi-interface trading halt.

The database row `system_state['trading_halted']` is the truth, shared by every PutDesk
process on the same database: a halt from the CLI in another SSH session reaches a
running console at its next sync (every PUTDESK_KILL_SWITCH_SYNC_SECONDS, <= 5 s).
The in-memory copy is what the hot path reads.

Fail-safe rules:
- halt() sets the in-memory flag before it tries to persist, so a database failure can
  never leave this process trading; the failure is logged and re-raised.
- If the flag cannot be read, this process treats itself as halted until a read succeeds.
- A halt the database could not take stays in force here, and is written by the first
  sync() that can write: a later read of the old row never undoes it.
- hold(): the database itself failed (locked, unreachable) while the engine worked. This
  process halts in memory ("Database unavailable: ..."); the first sync() that can write
  to the database again lifts it.
- The SQLite file deleted or replaced under this process (its (device, inode) at each
  sync differs from the one opened): this process and the file at the path no longer
  share a truth. Halted in memory for good, and the halt is written into the file now at
  the path too if there is one; only a restart clears it.

`emergency_halt()` is the CLI's stop: it writes the halt row with nothing but
system_state's three columns, so it lands whatever the schema revision (older, newer,
half-migrated).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from core.clock import Clock
from core.db.repos import AuditRepo, SystemStateRepo
from core.db.session import Database
from core.db.tables import AuditEvent, SystemState
from core.logs import OUTCOME
from core.redaction import redact

log = logging.getLogger("putdesk.kill_switch")

HALT_KEY = "trading_halted"
PROBE_KEY = "database_probe"  # written to learn whether the database takes writes again


@dataclass(frozen=True)
class HaltState:
    halted: bool
    reason: str = ""
    since: datetime | None = None
    by: str = ""
    persisted: bool = True  # False: in-memory only (the database could not be read/written)

    def as_dict(self) -> dict[str, object]:
        return {
            "halted": self.halted,
            "reason": self.reason,
            "since": self.since.isoformat() if self.since else None,
            "by": self.by,
            "persisted": self.persisted,
        }


class KillSwitch:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._state_repo = SystemStateRepo(db)
        self._audit = AuditRepo(db)
        self._clock = clock
        self._state = HaltState(halted=False)
        self._listeners: list[Callable[[HaltState], None]] = []
        self._held: str | None = None  # hold(): the database failed; halted in memory
        self._unpersisted: HaltState | None = None  # a halt the database did not take
        self._db = db
        self._lost: HaltState | None = None  # the file was deleted or replaced: for good
        #: The halt in force (since, reason, by) and the requests (actor, key) already
        #: answered while it lasts: each is logged and audited once, not at every check.
        self._answered: tuple[tuple[datetime | None, str, str], set[tuple[str, str]]] = (
            (None, "", ""), set())

    @property
    def state(self) -> HaltState:
        return self._state

    def is_halted(self) -> tuple[bool, str]:
        return self._state.halted, self._state.reason

    def add_listener(self, listener: Callable[[HaltState], None]) -> None:
        self._listeners.append(listener)

    def _set(self, state: HaltState) -> None:
        changed = (state.halted, state.reason, state.persisted) != (
            self._state.halted, self._state.reason, self._state.persisted)
        self._state = state
        if changed:
            self._notify()

    def _notify(self) -> None:
        for listener in list(self._listeners):
            try:
                listener(self._state)
            except Exception:
                log.exception("kill-switch listener failed")

    @property
    def held(self) -> bool:
        """Halted in memory by hold() (a database fault) until the database writes again."""
        return self._held is not None

    def hold(self, reason: str) -> HaltState:
        """Halt this process, in memory only, because the database failed: it could not
        take a halt row anyway. A halt already in force keeps its reason."""
        if (self._held is not None or self._unpersisted is not None
                or (self._state.halted and self._state.persisted)):
            return self._state
        self._held = reason
        log.critical("TRADING HALTED: %s", reason)
        self._set(HaltState(True, reason, self._clock.now(), "engine", persisted=False))
        return self._state

    def _file_lost(self) -> str | None:
        """Why the SQLite file at the path is no longer the one this process opened."""
        opened = self._db.file_identity
        if opened is None:
            return None
        now = self._db.current_file_identity()
        if now is None:
            return f"Database file deleted under this process: {self._db.sqlite_path}"
        if now != opened:
            return (f"Database file replaced under this process: {self._db.sqlite_path} "
                    "is another file now")
        return None

    def _lose_file(self, reason: str) -> HaltState:
        reason = f"{reason}. Halts and resumes no longer reach this process: restart PutDesk"
        log.critical("TRADING HALTED: %s", reason)
        state = HaltState(True, reason, self._clock.now(), "kill switch", persisted=False)
        self._lost = state
        self._set(state)
        if self._db.current_file_identity() is not None:
            # A restart opens the file now at the path: the halt must be in it.
            fresh = Database(self._db.url)
            try:
                emergency_halt(fresh, reason, "kill switch", self._clock.now())
            except Exception as exc:
                log.error("Could not write the halt into the new database file: %s", exc)
            finally:
                fresh.dispose()
        return state

    def sync(self) -> HaltState:
        """Re-read the flag from the database (startup and the periodic sync); write a
        halt it did not take before; lift a hold() once the database takes a write."""
        if self._lost is not None:
            return self._state
        lost = self._file_lost()
        if lost is not None:
            return self._lose_file(lost)
        try:
            row = self._state_repo.get(HALT_KEY)
            stored = _decode(row[0]) if row else HaltState(halted=False)
            pending, wrote = self._unpersisted, False
            if pending is not None and not stored.halted:
                self._state_repo.set(HALT_KEY, _encode(pending), self._clock.now())
                stored, wrote = replace(pending, persisted=True), True
            elif self._held is not None:
                now = self._clock.now()
                self._state_repo.set(PROBE_KEY, now.isoformat(), now)
        except Exception as exc:
            if self._held is not None or self._unpersisted is not None:
                return self._state  # still failing: stay halted as we are
            log.error("Kill switch state unreadable (%s): treating trading as halted", exc)
            self._set(HaltState(True, f"Kill switch state unreadable: {exc}",
                                self._clock.now(), "kill switch", persisted=False))
            return self._state
        if self._unpersisted is not None:
            self._unpersisted = None
            if wrote:
                log.warning("Halt persisted now that the database answers: %s", stored.reason)
                self._record("halt", f"Trading halted: {stored.reason} (persisted late: the "
                             "database was unavailable)", stored.by, "CRITICAL")
        if self._held is not None:
            log.warning("Database available again: lifting the halt (%s)", self._held)
            self._held = None
        self._set(stored)
        return self._state

    def _first_request(self, actor: str, key: str) -> bool:
        """Whether (actor, key) is new during the halt in force; remembers it."""
        halt = (self._state.since, self._state.reason, self._state.by)
        if self._answered[0] != halt:
            self._answered = (halt, set())
        seen = (actor, key) in self._answered[1]
        self._answered[1].add((actor, key))
        return not seen

    def halt(self, reason: str, actor: str, repeat_key: str | None = None) -> HaltState:
        """Halt trading. `repeat_key` names the request when its reason carries figures
        that move (a loss breaker's equity): a request repeated while the halt lasts (the
        same actor and key; the reason by default) is answered at DEBUG, with no new audit
        row, after its first answer."""
        reason = reason.strip() or "Manual emergency stop"
        key = repeat_key or reason
        if self._lost is not None or self._file_lost() is not None:
            # The file this process holds is not the one at the path: a halt written
            # through it would reach nobody. Halted here, and into the file at the path.
            self.sync()
            log.critical("Halt requested by %s (%s): %s", actor, reason, self._state.reason)
            return self._state
        # Read the database first: another process may have resumed since our last sync,
        # and an "already halted" answer from a stale copy would let trading go on.
        self.sync()
        if self._state.halted and self._state.persisted:
            # Keep the first reason: it is the one the operator must read before resuming.
            if not self._first_request(actor, key):
                # A breaker stays breached until someone resumes: its check repeats the
                # request every cycle, and one line and one audit row say it all.
                log.debug("Halt requested again by %s (%s) while already halted: %s",
                          actor, reason, self._state.reason)
                return self._state
            log.warning("Halt requested by %s (%s) while already halted: %s",
                        actor, reason, self._state.reason)
            self._record("halt", f"Halt requested while already halted: {reason}", actor,
                         "WARNING")
            return self._state
        state = HaltState(True, reason, self._clock.now(), actor)
        # Halted in memory first: whatever happens to the write, this process stops.
        self._state = HaltState(True, reason, state.since, actor, persisted=False)
        log.critical("TRADING HALTED: %s", reason)
        try:
            self._state_repo.set(HALT_KEY, _encode(state), state.since or self._clock.now())
        except Exception:
            log.exception("The halt could not be persisted; this process stays halted")
            self._unpersisted = state  # written by the first sync() that can
            self._notify()
            raise
        self._held = None
        self._set(state)
        self._first_request(actor, key)  # the halt itself was this request's answer
        self._record("halt", f"Trading halted: {reason}", actor, "CRITICAL")
        return state

    def resume(self, actor: str) -> HaltState:
        if self._lost is not None:
            raise RuntimeError(f"Not resumed: {self._lost.reason}")
        previous = self._state
        state = HaltState(False, "", self._clock.now(), actor)
        self._state_repo.set(HALT_KEY, _encode(state), self._clock.now())
        self._held = self._unpersisted = None  # the database took the write: it is back
        self._set(state)
        log.warning("Trading resumed by %s (was halted: %s)", actor, previous.reason or "-",
                    extra=OUTCOME)
        self._record("resume", f"Trading resumed (was: {previous.reason or 'not halted'})",
                     actor, "WARNING")
        return state

    def _record(self, kind: str, message: str, actor: str, severity: str) -> None:
        try:
            self._audit.record(kind, message, severity=severity, actor=actor,
                               source="kill_switch", ts=self._clock.now())
        except Exception:
            # The halt itself is persisted; a missing audit row must not undo it.
            log.exception("could not write the audit event for %s", kind)


def emergency_halt(db: Database, reason: str, actor: str, now: datetime) -> tuple[HaltState, bool]:
    """Write the halt without the schema being current: only system_state's key, value
    and updated_at are read and written, and the table is created on a database that
    predates it (revision 0004 keeps it). Returns (the state in force, whether it was
    halted already: the first reason stays). Raises when the halt did not land."""
    from sqlalchemy import insert, inspect, select, update

    table: Any = SystemState.__table__  # type: ignore[attr-defined]
    reason = reason.strip() or "Manual emergency stop"
    state = HaltState(True, reason, now, actor)
    with db.engine.connect() as conn:
        tables = inspect(conn)
        fresh = not tables.has_table(table.name) and not tables.has_table("alembic_version")
    if fresh:
        # A new database (halting before anything runs): built whole, as any command would.
        db.upgrade()
    with db.engine.begin() as conn:
        if not inspect(conn).has_table(table.name):
            table.create(conn)
        row = conn.execute(select(table.c.value).where(table.c.key == HALT_KEY)).first()
        if row is not None and (current := _decode(row[0])).halted:
            return current, True
        values = {"value": _encode(state), "updated_at": now}
        if row is None:
            conn.execute(insert(table).values(key=HALT_KEY, **values))
        else:
            conn.execute(update(table).where(table.c.key == HALT_KEY).values(**values))
    log.critical("TRADING HALTED: %s", reason, extra=OUTCOME)
    try:
        audit: Any = AuditEvent.__table__  # type: ignore[attr-defined]
        with db.engine.begin() as conn:
            conn.execute(insert(audit).values(
                ts=now, kind="halt", severity="CRITICAL", actor=actor[:200],
                source="kill_switch", symbol=None, message=redact(f"Trading halted: {reason}"),
                data=None))
    except Exception as exc:
        # The halt itself is written; an audit table of another shape must not undo it.
        from core.db.session import error_text

        log.warning("Halt written; its audit event could not be: %s", error_text(exc))
    return state, False


def announce(notifier: Any, state: HaltState) -> None:
    """A halt as every process notifies it (email and webhook by severity)."""
    notifier.notify("CRITICAL", "halt", f"TRADING HALTED: {state.reason}",
                    data={"by": state.by, "persisted": state.persisted})


def _encode(state: HaltState) -> str:
    return json.dumps(state.as_dict() | {"persisted": None})


def _decode(value: str) -> HaltState:
    try:
        data = json.loads(value)
        since = datetime.fromisoformat(data["since"]) if data.get("since") else None
        return HaltState(bool(data["halted"]), str(data.get("reason") or ""), since,
                         str(data.get("by") or ""))
    except (ValueError, KeyError, TypeError):
        # A row we cannot understand must not be read as "trading allowed".
        return HaltState(True, f"Kill switch row unreadable: {value[:60]!r}", None, "",
                         persisted=True)
