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
from .session import PeerState, Session, SummarySub

#: The account-summary tags IBKR documents for reqAccountSummary, in its order (IBKR's
#: Python AccountSummaryTags.AllTags misspells three; TWS answers these names).
ACCOUNT_TAGS = (
    "AccountType", "NetLiquidation", "TotalCashValue", "SettledCash", "AccruedCash",
    "BuyingPower", "EquityWithLoanValue", "PreviousDayEquityWithLoanValue", "GrossPositionValue",
    "RegTEquity", "RegTMargin", "SMA", "InitMarginReq", "MaintMarginReq", "AvailableFunds",
    "ExcessLiquidity", "Cushion", "FullInitMarginReq", "FullMaintMarginReq",
    "FullAvailableFunds", "FullExcessLiquidity", "LookAheadNextChange",
    "LookAheadInitMarginReq", "LookAheadMaintMarginReq", "LookAheadAvailableFunds",
    "LookAheadExcessLiquidity", "HighestSeverity", "DayTradesRemaining", "Leverage")
#: Tags that are not amounts: TWS sends them without a currency.
UNITLESS = frozenset({"AccountType", "Cushion", "LookAheadNextChange", "HighestSeverity",
                      "DayTradesRemaining", "Leverage"})
#: TWS refreshes an account-summary subscription every 3 minutes, not on fills
#: (reqAccountUpdates values, by contrast, follow a fill at once).
SUMMARY_REFRESH_SECONDS = 180.0


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

    def _avg_cost(self, p: Position) -> float:
        """IBKR's average cost: an option's per contract (premium x multiplier), and
        including commission (a sale's proceeds net of it, a purchase's cost plus it)."""
        if p.contract is None or not p.quantity:
            return p.avg_cost
        per_contract = self.sim.position_commission(p.contract) / abs(p.quantity)
        sign = 1 if p.quantity > 0 else -1
        return round(p.avg_cost * 100 + sign * per_contract, 6)

    async def _account_rows(self) -> list[tuple[str, str, str]]:
        """(tag, value, currency) for every tag of ACCOUNT_TAGS. The simulator has no
        intraday margin schedule: the full and look-ahead figures equal today's."""
        v = await self.sim.account_values()
        gross = 0.0
        for p in await self.sim.positions():
            gross += abs(p.quantity * await self._mark(p) * (100 if p.contract else 1))
        day = self.sim.clock.now().astimezone(NEW_YORK).date()
        if self._prev_equity[0] != day:
            self._prev_equity = (day, v.equity_with_loan)
        nlv = v.net_liquidation
        amounts: dict[str, float | None] = {
            "NetLiquidation": nlv, "TotalCashValue": v.total_cash, "SettledCash": v.total_cash,
            "AccruedCash": 0.0, "BuyingPower": v.buying_power,
            "EquityWithLoanValue": v.equity_with_loan,
            "PreviousDayEquityWithLoanValue": self._prev_equity[1],
            "GrossPositionValue": gross, "RegTEquity": v.equity_with_loan,
            "RegTMargin": v.init_margin_req,
            "SMA": None if v.equity_with_loan is None or v.init_margin_req is None
            else max(0.0, v.equity_with_loan - v.init_margin_req),
            "InitMarginReq": v.init_margin_req, "MaintMarginReq": v.maint_margin_req,
            "AvailableFunds": v.available_funds, "ExcessLiquidity": v.excess_liquidity,
            "FullInitMarginReq": v.init_margin_req, "FullMaintMarginReq": v.maint_margin_req,
            "FullAvailableFunds": v.available_funds,
            "FullExcessLiquidity": v.excess_liquidity,
            "LookAheadInitMarginReq": v.init_margin_req,
            "LookAheadMaintMarginReq": v.maint_margin_req,
            "LookAheadAvailableFunds": v.available_funds,
            "LookAheadExcessLiquidity": v.excess_liquidity,
        }
        cushion = (v.excess_liquidity / nlv) if nlv and v.excess_liquidity is not None else None
        texts = {"AccountType": "INDIVIDUAL", "LookAheadNextChange": "0",
                 "HighestSeverity": "", "DayTradesRemaining": "-1",
                 "Cushion": UNSET_DOUBLE_TEXT if cushion is None else f"{cushion:.6f}",
                 "Leverage": f"{gross / nlv:.4f}" if nlv else UNSET_DOUBLE_TEXT}
        rows = []
        for tag in ACCOUNT_TAGS:
            if tag in texts:
                rows.append((tag, texts[tag], ""))
            else:
                x = amounts[tag]
                rows.append((tag, UNSET_DOUBLE_TEXT if x is None else f"{x:.2f}", "USD"))
        return rows

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
        for tag, text, currency in await self._account_rows():
            s.send([6, 2, tag, text, currency, self.account])
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
        for tag, value, currency in await self._account_rows():
            s.send([73, 1, req_id, self.account, model, tag, value, currency])
        s.send([74, 1, req_id])

    async def _h_reqAccountSummary(self, s: Session, fields: list[str]) -> None:
        req_id = int(fields[2])
        tags = frozenset(t.strip() for t in fields[4].split(",") if t.strip())
        sub = SummarySub(s, req_id, tags)
        self._summaries[(id(s), req_id)] = sub
        await self._send_summary(sub)

    async def _h_cancelAccountSummary(self, s: Session, fields: list[str]) -> None:
        self._summaries.pop((id(s), int(fields[2])), None)

    async def _send_summary(self, sub: SummarySub) -> None:
        for tag, value, currency in await self._account_rows():
            if tag in sub.tags:
                sub.session.send([63, 1, sub.req_id, self.account, tag, value, currency])
        sub.session.send([64, 1, sub.req_id])

    async def refresh_summaries(self) -> None:
        """Every account-summary subscription gets fresh values (TWS: every 3 minutes)."""
        for key, sub in list(self._summaries.items()):
            if sub.session.closed:
                self._summaries.pop(key, None)
            else:
                await self._send_summary(sub)

    async def _summary_cadence(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(BrokerDisconnected):
                await self.refresh_summaries()

    async def _h_reqManagedAccts(self, s: Session, fields: list[str]) -> None:
        s.send([15, 1, self.account])

    async def _h_reqIds(self, s: Session, fields: list[str]) -> None:
        assert s.client_id is not None
        s.send([9, 1, self._next_ids.setdefault(s.client_id, 1)])

    async def _h_reqCurrentTime(self, s: Session, fields: list[str]) -> None:
        s.send([49, 1, int((await self.sim.current_time()).timestamp())])
