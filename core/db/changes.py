"""The change feed: one cheap way for every process to see that another one changed the
order ledger, the trades or the roll proposals.

Every transaction that writes one of those tables also writes a fresh token to a
`system_state` row of its feed (`changes.orders`, `changes.trades`, `changes.rolls`), in
the same transaction, so a change and its token commit (or roll back) together. A
reader compares the tokens with the ones it saw last (`read`: one small query,
whatever the size of the tables): a different token means something changed since.
In the writing process itself, `subscribe`rs hear of a change as soon as it commits,
with the tokens it wrote: a `ChangeFeed` told of them (`committed`) does not report the
same change again when its next look reads them back, so an own write is announced once.

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
import threading
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from core.db.session import dialect_insert
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

#: `subscriber({feed: token})`: the feeds a commit changed, with the token it wrote to each
Subscriber = Callable[[dict[str, str]], None]
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
    insert = dialect_insert(session.get_bind().dialect.name)
    # Bookkeeping only: nothing reads this time, so the wall clock is fine here.
    now = datetime.now(UTC)
    tokens = {feed: uuid.uuid4().hex for feed in sorted(feeds)}
    session.info[_COMMITTING] = tokens
    for feed, token in tokens.items():
        stmt = insert(table).values(key=PREFIX + feed, value=token, updated_at=now)
        session.execute(stmt.on_conflict_do_update(
            index_elements=["key"], set_={"value": stmt.excluded.value,
                                          "updated_at": stmt.excluded.updated_at}))


def _after_commit(session: Session) -> None:
    tokens = session.info.pop(_COMMITTING, None)
    if not tokens:
        return
    for subscriber in list(_subscribers.get(session.get_bind(), ())):
        try:
            subscriber(dict(tokens))
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
    """`subscriber({feed: token})` after every commit in this process that changed those
    feeds on `bind` (a Database's SQLAlchemy engine). It may be called from any thread."""
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


#: Tokens a ChangeFeed remembers per feed as announced: more than the own commits that can
#: land between two looks of its reader and reach it late (a token it forgot is at worst
#: announced twice, never missed).
REMEMBERED = 64


class ChangeFeed:
    """What changed since the last look, each change once. `changed()` reads the tokens
    (one small query) and returns the feeds whose token has not been announced yet
    (nothing on the first look, which only sets the baseline). `committed(tokens)`
    announces this process's own commit as it happens; the look that reads its token
    back then skips it.

    A token already announced is never news: its commit was announced after it landed,
    and so were the ones before it (each token write waits for the previous one: it is
    one row), so whoever reloaded then has read them all."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._announced: dict[str, deque[str]] | None = None
        self._lock = threading.Lock()  # the reader's thread and the committing ones

    def changed(self) -> set[str]:
        with self.db.session() as session:
            now = read(session)
        with self._lock:
            if self._announced is None:
                self._announced = {f: deque(maxlen=REMEMBERED) for f in FEEDS}
                for feed, token in now.items():
                    self._announced[feed].append(token)
                return set()
            return {f for f, token in now.items() if self._announce(f, token)}

    def committed(self, tokens: dict[str, str]) -> set[str]:
        """This process committed `tokens` (a subscriber's argument): the feeds to
        announce now, the ones a look has not announced already."""
        with self._lock:
            if self._announced is None:
                return set(tokens)  # no baseline yet: the first look takes these in
            return {f for f, token in tokens.items() if self._announce(f, token)}

    def _announce(self, feed: str, token: str) -> bool:
        assert self._announced is not None
        seen = self._announced[feed]
        if token in seen:
            return False
        seen.append(token)
        return True
