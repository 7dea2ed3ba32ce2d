"""SQLModel tables. Alembic migrations in core/db/migrations mirror these exactly
(a test compares them), so change both together."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite would otherwise drop the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: pass a timezone-aware time")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None if nullable else ..., sa_column=Column(
        UTCDateTime(), nullable=nullable, index=index))


def new_id() -> str:
    return uuid.uuid4().hex


class Trade(SQLModel, table=True):
    __tablename__ = "trades"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    symbol: str = Field(index=True, max_length=16)
    right: str = Field(default="P", max_length=1)
    strike: float
    expiration: date
    contracts: int
    side: str = Field(default="SELL", max_length=4)
    entry_price: float
    entry_time: datetime = _ts()
    exit_price: float | None = None
    exit_time: datetime | None = _ts(nullable=True)
    exit_reason: str | None = None
    status: str = Field(default="OPEN", index=True, max_length=16)
    order_ref: str | None = Field(default=None, max_length=64, unique=True)
    perm_id: int | None = None
    commission: float | None = None
    realized_pnl: float | None = None
    sector: str | None = Field(default=None, max_length=64)
    roll_count: int = Field(default=0)
    rolled_from_trade_id: str | None = Field(default=None, foreign_key="trades.id",
                                             max_length=32)
    assignment_detected: bool = Field(default=False)
    assignment_date: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class TradeEntrySnapshot(SQLModel, table=True):
    __tablename__ = "trade_entry_snapshots"

    id: int | None = Field(default=None, primary_key=True)
    trade_id: str = Field(foreign_key="trades.id", unique=True, max_length=32)
    underlying_price: float | None = None
    option_bid: float | None = None
    option_ask: float | None = None
    delta: float | None = None
    iv: float | None = None
    iv_rank: float | None = None
    vix: float | None = None
    earnings_date: date | None = None
    earnings_in_dte: bool | None = None
    sector: str | None = Field(default=None, max_length=64)
    captured_at: datetime = _ts()


class PositionSnapshot(SQLModel, table=True):
    __tablename__ = "position_snapshots"

    id: int | None = Field(default=None, primary_key=True)
    position_id: str = Field(unique=True, max_length=64)
    trade_id: str | None = Field(default=None, foreign_key="trades.id", max_length=32)
    symbol: str = Field(index=True, max_length=16)
    right: str = Field(default="P", max_length=1)
    strike: float
    expiration: date
    entry_date: date | None = None
    contracts: int
    option_price: float | None = None
    delta: float | None = None
    underlying_price: float | None = None
    pnl: float | None = None
    dte: int | None = None
    updated_at: datetime = _ts()


class SystemState(SQLModel, table=True):
    __tablename__ = "system_state"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = _ts()


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = _ts(index=True)
    kind: str = Field(index=True, max_length=32)
    severity: str = Field(default="INFO", max_length=16)
    actor: str = Field(default="", max_length=200)
    source: str = Field(default="", max_length=64)
    symbol: str | None = Field(default=None, max_length=16)
    message: str = Field(sa_column=Column(Text, nullable=False))
    data: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class EquitySnapshot(SQLModel, table=True):
    __tablename__ = "equity_snapshots"

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = _ts(index=True)
    net_liquidation: float
    excess_liquidity: float | None = None
    #: "broker" (an observation), "close" (a session's closing figure), "scenario"
    source: str = Field(default="broker", max_length=32)
    account: str = Field(default="", max_length=32, index=True)  # "" = before revision 0009


class EarningsCache(SQLModel, table=True):
    """Next earnings date per symbol, as a provider last reported it (24 h cache)."""

    __tablename__ = "earnings_cache"

    symbol: str = Field(primary_key=True, max_length=16)
    next_date: date | None = None  # None: the provider knows of no upcoming report
    source: str = Field(max_length=32)
    fetched_at: datetime = _ts()


class StagedOrder(SQLModel, table=True):
    """The order ledger: one row for every order PutDesk sends, claimed before it is sent
    so exactly one process sends it, and followed until it settles.

    kind "open" is an approved opportunity staged to be sent (spec 2.1B/3.2B staged
    limit, with the governor decision that approved it); "close" buys back a short put
    (exit rules, the operator's close, exit-all); "roll" is a roll combo; "stock" sells
    assigned shares. `order_ref` is what the broker order carries, so a retry, a reconnect
    or another process recognises it and never places it twice. `sender` names the
    process following the order and `lease_until` how long that claim holds without a
    heartbeat: past it, the sender is presumed gone and another process adopts the order.
    `active_key` (a position or proposal) is unique while the order works, so two
    processes cannot both close one position."""

    __tablename__ = "staged_orders"
    __table_args__ = (UniqueConstraint("active_key", name="uq_staged_orders_active_key"),)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, primary_key=True, max_length=32)
    created_at: datetime = _ts(index=True)
    updated_at: datetime = _ts()
    symbol: str = Field(index=True, max_length=16)
    right: str = Field(default="P", max_length=1)
    strike: float | None  # None: a stock order
    expiration: date | None
    contracts: int
    limit_price: float
    status: str = Field(default="STAGED", index=True, max_length=16)
    kind: str = Field(default="open", index=True, max_length=16)
    action: str = Field(default="SELL", max_length=4)
    order_ref: str = Field(unique=True, max_length=64)
    actor: str = Field(default="", max_length=200)
    decision: str = Field(sa_column=Column(Text, nullable=False))
    message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Execution progress (spec 3.2B: the live limit's deviation from the staged one).
    sent_at: datetime | None = _ts(nullable=True)
    broker_order_id: int | None = None
    perm_id: int | None = None
    last_limit: float | None = None
    limit_deviation: float | None = None
    filled: int = Field(default=0)
    avg_fill_price: float | None = None
    trade_id: str | None = Field(default=None, max_length=32)
    # The ledger (revision 0010).
    reprices: int = Field(default=0)
    commission: float | None = None
    realized_pnl: float | None = None
    position_id: str | None = Field(default=None, max_length=64)
    sender: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = _ts(nullable=True)
    active_key: str | None = Field(default=None, max_length=96)
    cancel_requested: str | None = Field(default=None, max_length=200)  # by whom


class RollProposal(SQLModel, table=True):
    """A defensive roll waiting for the operator (spec 5.3), with the figures it was
    proposed on and what became of it."""

    __tablename__ = "roll_proposals"

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, primary_key=True, max_length=32)
    created_at: datetime = _ts(index=True)
    updated_at: datetime = _ts()
    trade_id: str | None = Field(default=None, foreign_key="trades.id", max_length=32)
    position_id: str = Field(max_length=64)
    symbol: str = Field(index=True, max_length=16)
    contracts: int
    old_strike: float
    old_expiration: date
    new_strike: float
    new_expiration: date
    new_dte: int
    new_delta: float | None = None
    buyback_cost: float  # per share, at the ask
    new_premium: float  # per share, at the bid
    net_credit: float  # per share
    margin_change: float | None = None
    kind: str = Field(max_length=16)  # roll_out | roll_down_out
    reason: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="PENDING", index=True, max_length=16)
    decided_by: str | None = Field(default=None, max_length=200)
    decided_at: datetime | None = _ts(nullable=True)
    result: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    new_trade_id: str | None = Field(default=None, max_length=32)


__all__ = [
    "AuditEvent",
    "EarningsCache",
    "EquitySnapshot",
    "Index",
    "PositionSnapshot",
    "RollProposal",
    "StagedOrder",
    "SystemState",
    "Trade",
    "TradeEntrySnapshot",
    "UTCDateTime",
]
