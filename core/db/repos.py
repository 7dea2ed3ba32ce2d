"""Repositories: the only code that writes SQL. Callers pass times in (no clock reads
here), so tests and the simulator decide what "now" is."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select

from core.clock import NEW_YORK
from core.db.changes import QUIET
from core.db.session import Database, dialect_insert
from core.db.tables import (
    AuditEvent,
    EquitySnapshot,
    PositionSnapshot,
    RollProposal,
    StagedOrder,
    SystemState,
    Trade,
    TradeEntrySnapshot,
)
from core.redaction import redact


def _table(model: type[Any]) -> Any:
    return model.__table__


def _upsert(db: Database, table: Any, values: dict[str, Any], key: str) -> bool:
    """Atomic insert-or-update in one statement (no read-then-write race).
    True when a row was written."""
    stmt = dialect_insert(db.dialect)(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[key], set_={k: v for k, v in values.items() if k != key})
    with db.session() as session:
        result = session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))


class SystemStateRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str) -> tuple[str, datetime] | None:
        with self.db.session() as session:
            row = session.get(SystemState, key)
            return (row.value, row.updated_at) if row else None

    def set(self, key: str, value: str, now: datetime) -> None:
        _upsert(self.db, _table(SystemState), {"key": key, "value": value, "updated_at": now},
                "key")


class AuditRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, kind: str, message: str, *, ts: datetime, severity: str = "INFO",
               actor: str = "", source: str = "", symbol: str | None = None,
               data: dict[str, Any] | None = None) -> AuditEvent:
        # Audit rows are output too (the Log screen, `putdesk audit`): one redaction path.
        event = AuditEvent(ts=ts, kind=kind, severity=severity, actor=actor[:200],
                           source=source, symbol=symbol, message=redact(message),
                           data=(redact(json.dumps(data, default=str)) if data is not None
                                 else None))
        with self.db.session() as session:
            session.add(event)
            session.flush()
            session.refresh(event)
        return event

    def list(self, since: datetime | None = None, kinds: list[str] | None = None,
             limit: int = 500) -> list[AuditEvent]:
        query = select(AuditEvent)
        if since is not None:
            query = query.where(col(AuditEvent.ts) >= since)
        if kinds:
            query = query.where(col(AuditEvent.kind).in_(kinds))
        query = query.order_by(col(AuditEvent.ts).desc(), col(AuditEvent.id).desc()).limit(limit)
        with self.db.session() as session:
            return list(session.exec(query).all())


def _ny_day_bounds(ts: datetime, days_back: int = 0) -> datetime:
    ny = ts.astimezone(NEW_YORK)
    start = ny.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days_back)
    return start.replace(tzinfo=None).replace(tzinfo=NEW_YORK)


def _ny_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), NEW_YORK)


#: Rows that are a session's closing NetLiquidation: recorded at (or after) a close, or a
#: scenario's equity history (a list of daily closes).
CLOSE_SOURCES = ("close", "scenario")


class EquityRepo:
    """Equity history per account: the breakers' memory across restarts (spec 6.1A).
    Rows from before the account column (account "") belong to the first account that
    records equity after the upgrade: a one-account desk keeps its peak and closes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, ts: datetime, net_liquidation: float, source: str = "broker",
               excess_liquidity: float | None = None, account: str = "") -> None:
        with self.db.session() as session:
            if account and session.exec(select(EquitySnapshot.id).where(
                    EquitySnapshot.account == account).limit(1)).first() is None:
                session.execute(update(EquitySnapshot).where(
                    col(EquitySnapshot.account) == "").values(account=account))
            session.add(EquitySnapshot(ts=ts, net_liquidation=net_liquidation, source=source,
                                       excess_liquidity=excess_liquidity, account=account))

    def _one(self, query: Any) -> tuple[datetime, float] | None:
        with self.db.session() as session:
            row = session.exec(query.limit(1)).first()
            return (row.ts, row.net_liquidation) if row else None

    def last_close(self, account: str, first_day: date, last_day: date
                   ) -> tuple[datetime, float] | None:
        """The latest close recorded on a New York day in [first_day, last_day]."""
        query = (select(EquitySnapshot)
                 .where(EquitySnapshot.account == account,
                        col(EquitySnapshot.source).in_(CLOSE_SOURCES),
                        col(EquitySnapshot.ts) >= _ny_midnight(first_day),
                        col(EquitySnapshot.ts) < _ny_midnight(last_day + timedelta(days=1)))
                 .order_by(col(EquitySnapshot.ts).desc(), col(EquitySnapshot.id).desc()))
        return self._one(query)

    def first_since(self, account: str, start: datetime) -> tuple[datetime, float] | None:
        """The first equity recorded at or after `start`."""
        query = (select(EquitySnapshot)
                 .where(EquitySnapshot.account == account, col(EquitySnapshot.ts) >= start)
                 .order_by(col(EquitySnapshot.ts), col(EquitySnapshot.id)))
        return self._one(query)

    def peak_equity(self, account: str = "") -> float | None:
        with self.db.session() as session:
            value = session.exec(select(func.max(EquitySnapshot.net_liquidation))
                                 .where(EquitySnapshot.account == account)).one()
            return float(value) if value is not None else None

    def history(self, since: datetime | None = None, account: str | None = None
                ) -> list[EquitySnapshot]:
        """Oldest first; one account's when `account` is given."""
        query = select(EquitySnapshot)
        if since is not None:
            query = query.where(col(EquitySnapshot.ts) >= since)
        if account is not None:
            query = query.where(EquitySnapshot.account == account)
        with self.db.session() as session:
            return list(session.exec(
                query.order_by(col(EquitySnapshot.ts), col(EquitySnapshot.id))).all())

    def has_history(self, account: str | None = None) -> bool:
        query = select(EquitySnapshot.id)
        if account is not None:
            query = query.where(EquitySnapshot.account == account)
        with self.db.session() as session:
            return session.exec(query.limit(1)).first() is not None


class TradeRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, trade: Trade) -> Trade:
        with self.db.session() as session:
            session.add(trade)
        return trade

    def update(self, trade: Trade) -> Trade:
        with self.db.session() as session:
            merged = session.merge(trade)
            session.flush()
            return merged

    def claim_assignment(self, trade_id: str, now: datetime) -> bool:
        """Flag the trade assigned in one statement: of two processes that see the same
        assignment exactly one flags it, and only it alerts and responds."""
        stmt = (update(Trade).where(col(Trade.id) == trade_id,
                                    col(Trade.assignment_detected).is_(False))
                .values(assignment_detected=True, assignment_date=now, updated_at=now))
        with self.db.session() as session:
            return bool(getattr(session.execute(stmt), "rowcount", 0))

    def split_assignment(self, trade: Trade, assigned: int, now: datetime) -> Trade | None:
        """Part of a trade assigned (early, or some of its contracts): that part becomes a
        trade of its own, ASSIGNED and flagged, and the rest stays open (unflagged, so the
        assignment of the rest is seen too). One statement claims it: of two processes
        that see the same assignment exactly one splits. None: another did first."""
        if not 0 < assigned < trade.contracts:
            raise ValueError(f"{assigned} of {trade.contracts} contracts is not a part")
        share = assigned / trade.contracts
        commission = rest = None  # the sale's commission, shared by contracts
        if trade.commission is not None:
            commission = trade.commission * share
            rest = trade.commission - commission
        stmt = (update(Trade).where(col(Trade.id) == trade.id,
                                    col(Trade.contracts) == trade.contracts,
                                    col(Trade.assignment_detected).is_(False))
                .values(contracts=trade.contracts - assigned, updated_at=now,
                        commission=rest))
        part = Trade(**{**trade.model_dump(exclude={"id", "order_ref", "perm_id"}),
                        "contracts": assigned, "commission": commission,
                        "status": "ASSIGNED", "exit_time": now, "exit_reason": "assigned",
                        "exit_price": None, "realized_pnl": None,
                        "assignment_detected": True, "assignment_date": now,
                        "created_at": now, "updated_at": now})
        with self.db.session() as session:
            if not getattr(session.execute(stmt), "rowcount", 0):
                return None
            session.add(part)
        trade.contracts -= assigned
        trade.commission = rest
        return part

    def record_entry(self, trade: Trade, snapshot: TradeEntrySnapshot,
                     staged_id: str | None = None) -> Trade:
        """The trade of an order, once: a second call for the same orderRef (a retry, a
        reconciliation) updates its filled size instead of adding a trade."""
        with self.db.session() as session:
            existing = session.exec(select(Trade).where(Trade.order_ref == trade.order_ref)
                                    ).first() if trade.order_ref else None
            if existing is not None:
                existing.contracts = max(existing.contracts, trade.contracts)
                existing.entry_price = trade.entry_price or existing.entry_price
                existing.updated_at = trade.updated_at
                session.add(existing)
                saved = existing
            else:
                session.add(trade)
                session.flush()
                snapshot.trade_id = trade.id
                session.add(snapshot)
                saved = trade
            if staged_id is not None:
                staged = session.get(StagedOrder, staged_id)
                if staged is not None:
                    staged.trade_id = saved.id
                    session.add(staged)
            session.flush()
            session.refresh(saved)
            return saved

    def get(self, trade_id: str) -> Trade | None:
        with self.db.session() as session:
            return session.get(Trade, trade_id)

    def by_order_ref(self, order_ref: str) -> Trade | None:
        with self.db.session() as session:
            return session.exec(select(Trade).where(Trade.order_ref == order_ref)).first()

    def entry_snapshot(self, trade_id: str) -> TradeEntrySnapshot | None:
        with self.db.session() as session:
            return session.exec(select(TradeEntrySnapshot)
                                .where(TradeEntrySnapshot.trade_id == trade_id)).first()

    def for_symbol(self, symbol: str) -> list[Trade]:
        with self.db.session() as session:
            return list(session.exec(select(Trade).where(Trade.symbol == symbol)
                                     .order_by(col(Trade.entry_time))).all())

    def all(self) -> list[Trade]:
        with self.db.session() as session:
            return list(session.exec(select(Trade).order_by(col(Trade.entry_time))).all())

    def any(self) -> bool:
        """Whether the database holds a trade of any status."""
        with self.db.session() as session:
            return session.exec(select(Trade.id).limit(1)).first() is not None

    def open_trades(self) -> list[Trade]:
        with self.db.session() as session:
            return list(session.exec(
                select(Trade).where(Trade.status == "OPEN").order_by(col(Trade.entry_time))).all())


class PositionSnapshotRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def upsert(self, snapshot: PositionSnapshot) -> bool:
        """Insert, or update the row with the same position_id. True when a row was written."""
        values = snapshot.model_dump(exclude={"id"})
        return _upsert(self.db, _table(PositionSnapshot), values, "position_id")

    def get(self, position_id: str) -> PositionSnapshot | None:
        with self.db.session() as session:
            return session.exec(select(PositionSnapshot)
                                .where(PositionSnapshot.position_id == position_id)).first()


class StagedOrderRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, order: StagedOrder) -> StagedOrder:
        with self.db.session() as session:
            session.add(order)
            session.flush()
            session.refresh(order)
        return order

    def get(self, order_id: str) -> StagedOrder | None:
        with self.db.session() as session:
            return session.get(StagedOrder, order_id)

    def save(self, order: StagedOrder) -> StagedOrder:
        with self.db.session() as session:
            merged = session.merge(order)
            session.flush()
            session.refresh(merged)
            return merged

    def claim(self, order_id: str, now: datetime, message: str, sender: str | None = None,
              lease_until: datetime | None = None) -> bool:
        """STAGED -> SENDING in one statement: of two senders (the open's scheduler and
        an operator, or two processes) exactly one wins and only it may place the order."""
        stmt = (update(StagedOrder).where(col(StagedOrder.id) == order_id,
                                          col(StagedOrder.status) == "STAGED")
                .values(status="SENDING", updated_at=now, message=message, sender=sender,
                        lease_until=lease_until))
        with self.db.session() as session:
            return bool(getattr(session.execute(stmt), "rowcount", 0))

    def insert_claimed(self, order: StagedOrder) -> StagedOrder | None:
        """Insert an order already claimed by its sender; None when another order holds
        its active_key (another process is already working one for that position)."""
        from sqlalchemy.exc import IntegrityError

        try:
            return self.add(order)
        except IntegrityError:
            return None

    def renew(self, sender: str, now: datetime, until: datetime) -> list[StagedOrder]:
        """The sender's heartbeat: its working orders' leases run to `until`. Returns
        its working orders (so it sees cancel requests made by other processes)."""
        mine = (col(StagedOrder.sender) == sender,
                col(StagedOrder.status).in_(("SENDING", "WORKING", "UNKNOWN")))
        with self.db.session() as session:
            # A lease is no change anyone sees: it does not announce one (core/db/changes).
            session.execute(update(StagedOrder).where(*mine).values(lease_until=until)
                            .execution_options(**QUIET))
            return list(session.exec(select(StagedOrder).where(*mine)).all())

    def sent_by_others(self, sender: str) -> list[StagedOrder]:
        """Sent orders another sender (or none: rows from before the ledger) claims."""
        query = select(StagedOrder).where(
            col(StagedOrder.status).in_(("SENDING", "WORKING", "UNKNOWN")),
            (col(StagedOrder.sender) != sender) | col(StagedOrder.sender).is_(None))
        with self.db.session() as session:
            return list(session.exec(query).all())

    def take_over(self, row: StagedOrder, sender: str, now: datetime,
                  until: datetime) -> bool:
        """Adopt an orphan: only if its sender and lease are still as read, so of two
        adopters exactly one wins."""
        same_sender = (col(StagedOrder.sender) == row.sender if row.sender is not None
                       else col(StagedOrder.sender).is_(None))
        same_lease = (col(StagedOrder.lease_until) == row.lease_until
                      if row.lease_until is not None else col(StagedOrder.lease_until).is_(None))
        stmt = (update(StagedOrder).where(col(StagedOrder.id) == row.id, same_sender,
                                          same_lease)
                .values(sender=sender, lease_until=until, updated_at=now))
        with self.db.session() as session:
            return bool(getattr(session.execute(stmt), "rowcount", 0))

    def request_cancel(self, order_id: str, actor: str, now: datetime) -> bool:
        stmt = (update(StagedOrder).where(
            col(StagedOrder.id) == order_id,
            col(StagedOrder.status).in_(("SENDING", "WORKING", "UNKNOWN")))
                .values(cancel_requested=actor, updated_at=now))
        with self.db.session() as session:
            return bool(getattr(session.execute(stmt), "rowcount", 0))

    def latest_for_position(self, position_id: str, kind: str) -> StagedOrder | None:
        with self.db.session() as session:
            return session.exec(select(StagedOrder)
                                .where(StagedOrder.position_id == position_id,
                                       StagedOrder.kind == kind)
                                .order_by(col(StagedOrder.created_at).desc())).first()

    def transition(self, order_id: str, frm: str, to: str, now: datetime,
                   message: str) -> bool:
        """`frm` -> `to` only if the order is still `frm` (True when it was)."""
        stmt = (update(StagedOrder).where(col(StagedOrder.id) == order_id,
                                          col(StagedOrder.status) == frm)
                .values(status=to, updated_at=now, message=message))
        with self.db.session() as session:
            return bool(getattr(session.execute(stmt), "rowcount", 0))

    def by_ref(self, order_ref: str) -> StagedOrder | None:
        with self.db.session() as session:
            return session.exec(select(StagedOrder)
                                .where(StagedOrder.order_ref == order_ref)).first()

    def set_status(self, order_id: str, status: str, now: datetime,
                   message: str | None = None) -> StagedOrder | None:
        with self.db.session() as session:
            row = session.get(StagedOrder, order_id)
            if row is None:
                return None
            row.status, row.updated_at = status, now
            if message is not None:
                row.message = message
            session.add(row)
            session.flush()
            session.refresh(row)
            return row

    def list(self, statuses: tuple[str, ...] | None = ("STAGED",),
             kinds: tuple[str, ...] | None = None) -> list[StagedOrder]:
        query = select(StagedOrder)
        if statuses:
            query = query.where(col(StagedOrder.status).in_(statuses))
        if kinds:
            query = query.where(col(StagedOrder.kind).in_(kinds))
        with self.db.session() as session:
            return list(session.exec(query.order_by(col(StagedOrder.created_at))).all())


class RollRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, proposal: RollProposal) -> RollProposal:
        with self.db.session() as session:
            merged = session.merge(proposal)
            session.flush()
            session.refresh(merged)
            return merged

    def get(self, proposal_id: str) -> RollProposal | None:
        with self.db.session() as session:
            return session.get(RollProposal, proposal_id)

    def find(self, statuses: tuple[str, ...] | None = None) -> list[RollProposal]:
        query = select(RollProposal)
        if statuses:
            query = query.where(col(RollProposal.status).in_(statuses))
        with self.db.session() as session:
            return list(session.exec(query.order_by(col(RollProposal.created_at).desc())).all())

    def for_position(self, position_id: str) -> list[RollProposal]:
        with self.db.session() as session:
            return list(session.exec(select(RollProposal)
                                     .where(RollProposal.position_id == position_id)
                                     .order_by(col(RollProposal.created_at).desc())).all())

    def decide(self, proposal_id: str, frm: str, to: str, actor: str, now: datetime) -> bool:
        """PENDING -> APPROVED/REJECTED in one statement: one decision per proposal."""
        stmt = (update(RollProposal).where(col(RollProposal.id) == proposal_id,
                                           col(RollProposal.status) == frm)
                .values(status=to, decided_by=actor[:200], decided_at=now, updated_at=now))
        with self.db.session() as session:
            return bool(getattr(session.execute(stmt), "rowcount", 0))
