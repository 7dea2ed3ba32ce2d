"""The change feed: one cheap way for every process to see that another one changed the
order ledger, the trades or the roll proposals.

Every transaction that writes one of those tables also writes a fresh token to a
`system_state` row of its feed (`changes.orders`, `changes.trades`, `changes.rolls`), in
the same transaction, so a change and its token commit (or roll back) together. A
reader compares the tokens with the ones it saw last (`read`: one small query,
whatever the size of the tables): a different token means something changed since.
In the writing process itself, `subscribe`rs hear of a change as soon as it commits.

Tokens, not timestamps or row counts: an update of an old row moves neither the newest
`updated_at` nor the count, two processes' clocks may disagree (each simulator has its
own), and a test's fixed clock never moves. Tokens, not counters: a new random value
needs no read-modify-write, so it is the same upsert on SQLite and PostgreSQL.

The hook sits on the ORM session (every write in PutDesk goes through one, core/db/
repos.py), so a new write path is covered without remembering to announce it. A write
nobody sees on a screen (the ledger's lease renewal, every few seconds while an order
works) opts out with `.execution_options(**QUIET)`.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from core.db.tables import SystemState

#: table -> feed
TRACKED = {"staged_orders": "orders", "trades": "trades", "roll_proposals": "rolls"}
FEEDS = tuple(sorted(set(TRACKED.values())))
PREFIX = "changes."
#: Execution options of a write no screen shows (it announces no change).
QUIET = {"putdesk_change": False}
_PENDING = "putdesk_changed_feeds"
_COMMITTING = "putdesk_committing_feeds"

log = logging.getLogger("putdesk.db.changes")

Subscriber = Callable[[set[str]], None]
#: SQLAlchemy engine (one per Database) -> who hears of its commits in this process
_subscribers: dict[Any, list[Subscriber]] = {}


def _mark(session: Session, table: Any) -> None:
    name = getattr(table, "name", None) or getattr(table, "__tablename__", "")
    feed = TRACKED.get(str(name))
    if feed is not None:
        session.info.setdefault(_PENDING, set()).add(feed)


def _on_execute(state: ORMExecuteState) -> None:
    """Statements: the ledger's conditional UPDATEs (claim, transition, cancel ...)."""
    if not (state.is_update or state.is_delete or state.is_insert):
        return
    if not state.execution_options.get("putdesk_change", True):
        return
    _mark(state.session, getattr(state.statement, "table", None))


def _on_flush(session: Session, _flush: UOWTransaction) -> None:
    """The unit of work: rows added, merged or deleted (still listed after a flush)."""
    for obj in (*session.new, *session.dirty, *session.deleted):
        _mark(session, type(obj))


def _on_commit(session: Session) -> None:
    session.flush()  # what is still pending is marked now, before the tokens are written
    feeds = session.info.pop(_PENDING, None)
    if not feeds:
        return
    table = SystemState.__table__  # type: ignore[attr-defined]
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    # Bookkeeping only: nothing reads this time, so the wall clock is fine here.
    now = datetime.now(UTC)
    session.info[_COMMITTING] = feeds
    for feed in sorted(feeds):
        stmt = dialect.insert(table).values(key=PREFIX + feed, value=uuid.uuid4().hex,
                                            updated_at=now)
        session.execute(stmt.on_conflict_do_update(
            index_elements=["key"], set_={"value": stmt.excluded.value,
                                          "updated_at": stmt.excluded.updated_at}))


def _after_commit(session: Session) -> None:
    feeds = session.info.pop(_COMMITTING, None)
    if not feeds:
        return
    for subscriber in list(_subscribers.get(session.get_bind(), ())):
        try:
            subscriber(set(feeds))
        except Exception:  # a listener's failure must not fail the write that committed
            log.exception("change subscriber failed")


def _on_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_COMMITTING, None)


_installed = False


def install() -> None:
    """Hook every ORM session of this process (idempotent)."""
    global _installed
    if _installed:
        return
    event.listen(Session, "do_orm_execute", _on_execute)
    event.listen(Session, "after_flush", _on_flush)
    event.listen(Session, "before_commit", _on_commit)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_soft_rollback", lambda s, _t: _on_rollback(s))
    _installed = True


def subscribe(bind: Any, subscriber: Subscriber) -> None:
    """`subscriber(feeds)` after every commit in this process that changed `feeds` on
    `bind` (a Database's SQLAlchemy engine). It may be called from any thread."""
    _subscribers.setdefault(bind, []).append(subscriber)


def unsubscribe(bind: Any, subscriber: Subscriber) -> None:
    with contextlib.suppress(KeyError, ValueError):
        _subscribers[bind].remove(subscriber)
        if not _subscribers[bind]:
            del _subscribers[bind]


def read(session: Session) -> dict[str, str]:
    """feed -> its current token (a feed never written has none)."""
    table = SystemState.__table__  # type: ignore[attr-defined]
    rows = session.execute(select(table.c.key, table.c.value).where(
        table.c.key.in_([PREFIX + f for f in FEEDS])))
    return {str(key).removeprefix(PREFIX): str(value) for key, value in rows}


class ChangeFeed:
    """What changed since the last look: `changed()` reads the tokens and returns the
    feeds whose token moved (nothing on the first look, which only sets the baseline)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._seen: dict[str, str] | None = None

    def changed(self) -> set[str]:
        with self.db.session() as session:
            now = read(session)
        before, self._seen = self._seen, now
        if before is None:
            return set()
        return {f for f in FEEDS if now.get(f) != before.get(f)}
