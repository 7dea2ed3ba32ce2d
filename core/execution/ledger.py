"""The order ledger: every order PutDesk sends is a database row, claimed before it is
sent, followed until it settles, and never left working with nobody following it.

- An opening sell is staged first and claimed STAGED -> SENDING; a close, a roll combo or
  a stock sale is inserted already claimed, under an `active_key` (its position or
  proposal) that is unique while it works: of two processes closing one position, the
  second finds the key taken and sends nothing.
- The claim names its sender (this process) and holds for ORDER_LEASE_SECONDS; the
  sender renews it while it follows the order (the engine's heartbeat). A lease that runs
  out means the sender is gone (kill -9, a lost machine): another process, or the same
  one restarted, adopts the order (`Adopter`) and walks it on or cancels it.
- A cancel asked for in another process (F4, `putdesk cancel`) is written to the row;
  the sender sees it at its next heartbeat and cancels at the broker, since at IBKR only
  the client that placed an order may change it.

Rows keep their status vocabulary (STAGED, SENDING, WORKING, UNKNOWN, FILLED, PARTIAL,
CANCELLED, REJECTED); the kinds are "open", "close", "roll" and "stock".
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from core.clock import Clock
from core.db.repos import StagedOrderRepo
from core.db.tables import StagedOrder
from core.models import OrderResult

log = logging.getLogger("putdesk.execution.ledger")

KINDS = ("open", "close", "roll", "stock")
#: Kinds that add risk: a halt cancels them at once; closes (and stock sales, which
#: only reduce a position) keep working while halted.
RISK_ADDING = ("open", "roll")
SENT = ("SENDING", "WORKING", "UNKNOWN")
STATUS_OF_OUTCOME = {"FILLED": "FILLED", "PARTIAL": "PARTIAL", "WORKING": "WORKING",
                     "CANCELLED": "CANCELLED", "REJECTED": "REJECTED", "UNKNOWN": "UNKNOWN"}


@dataclass(frozen=True)
class NewOrder:
    """A close, roll or stock sale to be claimed and sent."""

    kind: str
    symbol: str
    contracts: int
    action: str
    limit_price: float
    active_key: str
    strike: float | None = None
    expiration: date | None = None
    right: str = "P"
    position_id: str | None = None
    trade_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    message: str = ""


class OrderLedger:
    def __init__(self, repo: StagedOrderRepo, clock: Clock, wall_clock: Clock, sender: str,
                 lease_seconds: float) -> None:
        self.repo = repo
        self.clock = clock  # market time: the rows' created/updated stamps
        self.wall_clock = wall_clock  # leases are real time, whatever the market's clock
        self.sender = sender
        self.lease_seconds = lease_seconds

    def lease(self) -> datetime:
        return self.wall_clock.now() + timedelta(seconds=self.lease_seconds)

    def claim_staged(self, row_id: str, message: str) -> bool:
        return self.repo.claim(row_id, self.clock.now(), message, self.sender, self.lease())

    def open(self, new: NewOrder, ref_prefix: str) -> StagedOrder | None:
        """Insert `new` claimed by this process; None when another order already works
        its active_key (then nothing may be sent)."""
        now = self.clock.now()
        row = StagedOrder(created_at=now, updated_at=now, symbol=new.symbol, right=new.right,
                          strike=new.strike, expiration=new.expiration,
                          contracts=new.contracts, limit_price=new.limit_price,
                          status="SENDING", kind=new.kind, action=new.action, order_ref="",
                          actor=self.sender, decision=json.dumps(new.detail, default=str),
                          message=new.message, position_id=new.position_id,
                          trade_id=new.trade_id, sender=self.sender,
                          lease_until=self.lease(), active_key=new.active_key)
        row.order_ref = f"{ref_prefix}{row.id[:16]}"
        return self.repo.insert_claimed(row)

    def holder(self, active_key: str) -> StagedOrder | None:
        """The working order holding `active_key`, if any."""
        return next((r for r in self.repo.list(SENT) if r.active_key == active_key), None)

    def update(self, row_id: str, status: str, message: str,
               result: OrderResult | None = None) -> StagedOrder | None:
        """Write an order's progress or outcome; a final status frees its active_key and
        its lease."""
        row = self.repo.get(row_id)
        if row is None:
            return None
        now = self.clock.now()
        row.status, row.message, row.updated_at = status, message, now
        if result is not None:
            row.broker_order_id = result.order_id or row.broker_order_id
            row.perm_id = result.perm_id or row.perm_id
            row.last_limit = result.last_limit if result.last_limit is not None \
                else row.last_limit
            row.limit_deviation = result.limit_deviation
            row.filled = max(result.filled, row.filled)
            row.avg_fill_price = result.avg_fill_price or row.avg_fill_price
            row.reprices = max(result.reprices, row.reprices)
            if result.commission is not None:
                row.commission = result.commission
            if status in ("WORKING", "SENDING") and row.sent_at is None:
                row.sent_at = now
        if status not in SENT:
            row.active_key = None
            row.lease_until = None
        else:
            row.lease_until = self.lease()
        return self.repo.save(row)

    def finish(self, row_id: str, result: OrderResult) -> StagedOrder | None:
        status = STATUS_OF_OUTCOME.get(result.outcome, "REJECTED")
        text = result.reason + "".join(f" · ⚠ {w}" for w in result.warnings)
        return self.update(row_id, status, text, result)

    def heartbeat(self) -> list[StagedOrder]:
        """Renew this process's leases; its working orders come back (cancel requests)."""
        return self.repo.renew(self.sender, self.wall_clock.now(), self.lease())

    def orphans(self) -> list[StagedOrder]:
        """Sent orders nobody follows: their sender's lease ran out, or the sender was a
        process on this machine that no longer exists (a restart after kill -9 adopts at
        once instead of waiting out the lease)."""
        now = self.wall_clock.now()
        return [r for r in self.repo.sent_by_others(self.sender)
                if r.lease_until is None or r.lease_until < now or sender_gone(r.sender)]

    def take_over(self, row: StagedOrder) -> bool:
        won = self.repo.take_over(row, self.sender, self.wall_clock.now(), self.lease())
        if won:
            log.warning("Order %s (%s): its sender (%s) stopped renewing its claim; adopted "
                        "by %s", row.order_ref, row.kind, row.sender, self.sender)
        return won

    def request_cancel(self, row_id: str, actor: str) -> bool:
        return self.repo.request_cancel(row_id, actor, self.clock.now())


#: Reasons an order is stopped on purpose (an operator's cancel, a process shutting down):
#: such an order did not get stuck, and is not reported as if it had.
ON_PURPOSE = ("cancelled by ", "PutDesk stopping", "PutDesk process stopping")


def stopped_on_purpose(text: str | None) -> bool:
    return any(mark in (text or "") for mark in ON_PURPOSE)


_SENDER = re.compile(r"@(?P<host>\S+) pid (?P<pid>\d+)")


def sender_gone(sender: str | None) -> bool:
    """True when `sender` names a process on this host that is no longer running."""
    m = _SENDER.search(sender or "")
    if m is None or m.group("host") != socket.gethostname():
        return False
    try:
        os.kill(int(m.group("pid")), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False


#: What the last attempt at a staged order did when it left the order staged; its row's
#: message starts with one of these, so the Orders row says what happened (in this
#: process, in another one, and after a restart) and not only a passing notification.
DRY_RUN_OK = "DRY RUN ok"
DRY_RUN_REFUSED = "DRY RUN refused"
REFUSED = "REFUSED"
ATTEMPT_MARKS = (DRY_RUN_OK, DRY_RUN_REFUSED, REFUSED)


def attempt_text(result: OrderResult, dry_run: bool) -> str:
    """The message of a staged order after an attempt that did not send it."""
    if dry_run and result.outcome == "DRY_RUN":
        price = (f" at ${result.limit_price:.2f}" if result.limit_price is not None else "")
        return f"{DRY_RUN_OK}{price}: every check passed, nothing sent (still staged)"
    if dry_run:
        return f"{DRY_RUN_REFUSED}: {result.reason} (still staged)"
    return f"{REFUSED}: {result.reason} (still staged)"


def attempt_mark(row: StagedOrder) -> str | None:
    """DRY_RUN_OK, DRY_RUN_REFUSED or REFUSED when a staged row's last attempt left it
    staged; None otherwise."""
    if row.status != "STAGED":
        return None
    return next((m for m in ATTEMPT_MARKS if (row.message or "").startswith(m)), None)


def describe(row: StagedOrder) -> str:
    """'close AAPL 2026-12-18 200P x2', 'stock XYZ x200' ... for messages and audit."""
    if row.strike is None or row.expiration is None:
        return f"{row.kind} {row.symbol} x{row.contracts}"
    return f"{row.kind} {row.symbol} {row.expiration} {row.strike:g}{row.right} x{row.contracts}"
