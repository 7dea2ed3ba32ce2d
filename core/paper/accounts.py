"""The account desk: account values, positions and portfolio, from the simulator's
book, answered and kept up to date as TWS does for subscribed clients."""

from __future__ import annotations

import asyncio
import contextlib

from core.broker.base import (
    BrokerDisconnected,
    BrokerError,
    Position,
)
from core.clock import NEW_YORK

from .codec import UNSET_DOUBLE_TEXT
from .contracts import Instrument
from .session import PeerState, Session

#: The account tags PutDesk reads, in the order TWS happens to send them.
ACCOUNT_TAGS = ("NetLiquidation", "AvailableFunds", "ExcessLiquidity", "InitMarginReq",
                "MaintMarginReq", "EquityWithLoanValue", "TotalCashValue", "BuyingPower")


class AccountDesk(PeerState):
    def _schedule_refresh(self) -> None:
        if not self._refresh_pending:
            self._refresh_pending = True
            self._spawn(self._refresh())

    async def _refresh(self) -> None:
        """Positions and portfolio changed: update subscribed clients as TWS does."""
        await asyncio.sleep(0)  # let the rest of a fill's events go out first
        self._refresh_pending = False
        with contextlib.suppress(BrokerDisconnected):
            for s in list(self._sessions):
                if s.positions_sub:
                    await self._send_positions(s, changes_only=True)
                if s.account_sub:
                    await self._send_account_updates(s, end=False)

    def _instrument(self, p: Position) -> Instrument:
        return self.book.option(p.contract) if p.contract else self.book.stock(p.symbol)

    @staticmethod
    def _avg_cost(p: Position) -> float:
        # IBKR reports an option's average cost per contract (premium x multiplier).
        return p.avg_cost * 100 if p.contract else p.avg_cost

    async def _account_rows(self) -> list[tuple[str, str]]:
        v = await self.sim.account_values()
        values = (v.net_liquidation, v.available_funds, v.excess_liquidity,
                  v.init_margin_req, v.maint_margin_req, v.equity_with_loan, v.total_cash,
                  v.buying_power)
        return [(tag, UNSET_DOUBLE_TEXT if x is None else f"{x:.2f}")
                for tag, x in zip(ACCOUNT_TAGS, values, strict=True)]

    async def _send_positions(self, s: Session, changes_only: bool = False) -> None:
        current = {}
        for p in await self.sim.positions():
            inst = self._instrument(p)
            current[inst.con_id] = (inst, p.quantity, self._avg_cost(p))
        for con_id, (inst, qty, avg) in current.items():
            if not changes_only or s.positions_sent.get(con_id) != qty:
                s.send([61, 3, self.account, *inst.fields(""), qty, avg])
        for con_id in set(s.positions_sent) - set(current):
            inst_gone = self.book.by_con_id(con_id)
            if inst_gone is not None:
                s.send([61, 3, self.account, *inst_gone.fields(""), 0.0, 0.0])
        s.positions_sent = {k: v[1] for k, v in current.items()}

    async def _mark(self, p: Position) -> float:
        if p.contract is None:
            return await self.sim.underlying_price(p.symbol) or p.avg_cost
        try:
            mid = (await self.sim.option_quote(p.contract)).mid
        except BrokerDisconnected:
            raise
        except BrokerError:
            mid = None
        return p.avg_cost if mid is None else mid

    async def _send_account_updates(self, s: Session, end: bool) -> None:
        for tag, text in await self._account_rows():
            s.send([6, 2, tag, text, "USD", self.account])
        held = set()
        for p in await self.sim.positions():
            inst = self._instrument(p)
            held.add(inst.con_id)
            mult = 100 if p.contract else 1
            mark = await self._mark(p)
            value = p.quantity * mark * mult
            cost = p.quantity * self._avg_cost(p)
            s.send([7, 8, *inst.fields(""), p.quantity, mark, value, self._avg_cost(p),
                    value - cost, 0.0, self.account])
        for con_id in s.portfolio_sent - held:
            gone = self.book.by_con_id(con_id)
            if gone is not None:
                s.send([7, 8, *gone.fields(""), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, self.account])
        s.portfolio_sent = held
        now = self.sim.clock.now().astimezone(NEW_YORK)
        s.send([8, 1, now.strftime("%H:%M")])
        if end:
            s.send([54, 1, self.account])

    async def _h_reqPositions(self, s: Session, fields: list[str]) -> None:
        s.positions_sub = True
        await self._send_positions(s)
        s.send([62, 1])

    async def _h_cancelPositions(self, s: Session, fields: list[str]) -> None:
        s.positions_sub = False

    async def _h_reqPositionsMulti(self, s: Session, fields: list[str]) -> None:
        req_id, model = int(fields[2]), fields[4]
        for p in await self.sim.positions():
            inst = self._instrument(p)
            s.send([71, 1, req_id, self.account, *inst.fields(""), p.quantity,
                    self._avg_cost(p), model])
        s.send([72, 1, req_id])

    async def _h_reqAccountUpdates(self, s: Session, fields: list[str]) -> None:
        s.account_sub = fields[2] == "1"
        if s.account_sub:
            await self._send_account_updates(s, end=True)

    async def _h_reqAccountUpdatesMulti(self, s: Session, fields: list[str]) -> None:
        req_id, model = int(fields[2]), fields[4]
        for tag, value in await self._account_rows():
            s.send([73, 1, req_id, self.account, model, tag, value, "USD"])
        s.send([74, 1, req_id])

    async def _h_reqAccountSummary(self, s: Session, fields: list[str]) -> None:
        req_id, tags = int(fields[2]), set(fields[4].split(","))
        for tag, value in await self._account_rows():
            if tag in tags:
                s.send([63, 1, req_id, self.account, tag, value, "USD"])
        s.send([64, 1, req_id])

    async def _h_reqManagedAccts(self, s: Session, fields: list[str]) -> None:
        s.send([15, 1, self.account])

    async def _h_reqIds(self, s: Session, fields: list[str]) -> None:
        assert s.client_id is not None
        s.send([9, 1, self._next_ids.setdefault(s.client_id, 1)])

    async def _h_reqCurrentTime(self, s: Session, fields: list[str]) -> None:
        s.send([49, 1, int((await self.sim.current_time()).timestamp())])
