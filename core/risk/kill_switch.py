"""The kill switch (spec 8.2): a persistent, multi-interface trading halt.

The database row `system_state['trading_halted']` is the truth, shared by every PutDesk
process on the same database: a halt from the CLI in another SSH session reaches a
running console at its next sync (every PUTDESK_KILL_SWITCH_SYNC_SECONDS, <= 5 s).
The in-memory copy is what the hot path reads.

Fail-safe rules:
- halt() sets the in-memory flag before it tries to persist, so a database failure can
  never leave this process trading; the failure is logged and re-raised.
- If the flag cannot be read, this process treats itself as halted until a read succeeds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from core.clock import Clock
from core.db.repos import AuditRepo, SystemStateRepo
from core.db.session import Database

log = logging.getLogger("putdesk.kill_switch")

HALT_KEY = "trading_halted"


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

    def sync(self) -> HaltState:
        """Re-read the flag from the database (startup and the periodic sync)."""
        try:
            row = self._state_repo.get(HALT_KEY)
        except Exception as exc:
            log.error("Kill switch state unreadable (%s): treating trading as halted", exc)
            self._set(HaltState(True, f"Kill switch state unreadable: {exc}",
                                self._clock.now(), "kill switch", persisted=False))
            return self._state
        self._set(_decode(row[0]) if row else HaltState(halted=False))
        return self._state

    def halt(self, reason: str, actor: str) -> HaltState:
        reason = reason.strip() or "Manual emergency stop"
        # Read the database first: another process may have resumed since our last sync,
        # and an "already halted" answer from a stale copy would let trading go on.
        self.sync()
        if self._state.halted and self._state.persisted:
            # Keep the first reason: it is the one the operator must read before resuming.
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
            self._notify()
            raise
        self._set(state)
        self._record("halt", f"Trading halted: {reason}", actor, "CRITICAL")
        return state

    def resume(self, actor: str) -> HaltState:
        previous = self._state
        state = HaltState(False, "", self._clock.now(), actor)
        self._state_repo.set(HALT_KEY, _encode(state), self._clock.now())
        self._set(state)
        log.warning("Trading resumed by %s (was halted: %s)", actor, previous.reason or "-")
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
