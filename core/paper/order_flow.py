"""The order desk: client orderIds <-> simulator orders, placeOrder (new, modify,
what-if), cancels, and the simulator's order events turned into TWS messages.

The simulator announces an order (PendingSubmit) before place_order returns its id, so a
placement waits in `_pending` and the first event carrying that very OrderRequest object
claims it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from core.broker.base import (
    BrokerDisconnected,
    BrokerError,
    BrokerEvent,
    ComboLeg,
    ConnectionChanged,
    Fill,
    FillReceived,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderStatusChanged,
    OrderType,
    PositionsChanged,
)
from core.clock import NEW_YORK

from .accounts import AccountDesk
from .codec import Field
from .contracts import UnknownContract, bag_contract_fields, resolve
from .orders import (
    ComboLegSpec,
    ExecView,
    MarginState,
    PlacedOrder,
    commission_report,
    exec_details,
    open_order,
    order_status,
    parse_place_order,
)
from .session import PeerOrder, Session

READ_ONLY_TEXT = ("Error validating request.-'bO' : cause - The API interface is currently "
                  "in Read-Only mode.")


class OrderDesk(AccountDesk):
    def _on_sim_event(self, event: BrokerEvent) -> None:
        if isinstance(event, OrderStatusChanged):
            self._on_order_state(event.state)
        elif isinstance(event, FillReceived):
            self._on_fill(event.fill)
        elif isinstance(event, PositionsChanged):
            self._schedule_refresh()
        elif isinstance(event, ConnectionChanged) and not self._quiet_link:
            if event.connected:
                self.send_error(-1, 1102, "Connectivity between IB and Trader Workstation "
                                "has been restored - data maintained.")
            else:
                self.send_error(-1, 1100, "Connectivity between IB and Trader Workstation "
                                "has been lost.")
        # BrokerMessage: TWS's 201/202 errors are derived from the status changes.

    def _order_for(self, state: OrderState) -> PeerOrder:
        po = self._by_sim.get(state.order_id)
        if po is not None:
            return po
        for i, (request, pending) in enumerate(self._pending):
            if request is state.request:
                po = pending
                del self._pending[i]
                break
        else:
            # An order the simulator took from elsewhere: a manual TWS order (clientId 0,
            # orderId 0; ib_async keys those by permId).
            po = self._peer_order(0, 0, state.request)
        po.sim_id, po.perm_id = state.order_id, state.perm_id or 0
        self._by_sim[state.order_id] = po
        return po

    def _on_order_state(self, state: OrderState) -> None:
        po = self._order_for(state)
        before = po.status
        combo_fill = self._combo_fill(po, state)
        po.request = state.request
        po.status = state.status.value
        po.filled, po.remaining = float(state.filled), float(state.remaining)
        po.avg_fill_price = state.avg_fill_price or 0.0
        po.message = state.message
        if state.status is OrderStatus.PENDING_SUBMIT:
            return  # ib_async sets PendingSubmit itself; TWS reports from PreSubmitted on
        s = self._by_client.get(po.client_id)
        if s is None:
            return  # nobody connected: like TWS, the client catches up via reqOpenOrders
        if state.status is OrderStatus.INACTIVE and before != "Inactive":
            s.error(po.order_id, 201, f"Order rejected - reason:{state.message}")
        if combo_fill is not None:
            s.send(exec_details(s.version, combo_fill))
        if state.status is not OrderStatus.CANCELLED:
            s.send(open_order(s.version, po.view()))
        s.send(self._status_msg(po))
        if state.status is OrderStatus.CANCELLED and before != "Cancelled":
            s.error(po.order_id, 202, "Order Canceled - reason:")

    def _combo_fill(self, po: PeerOrder, state: OrderState) -> ExecView | None:
        """A combo's own execution (its BAG contract, the net price), which TWS reports
        after its legs' executions: IBKR clients count a combo's fills from it."""
        if not po.request.legs or state.filled <= po.filled:
            return None
        qty = state.filled - po.filled
        total = (state.avg_fill_price or 0.0) * state.filled
        price = (total - po.avg_fill_price * po.filled) / qty
        po.combo_execs += 1
        when = self.sim.clock.now().astimezone(NEW_YORK)
        return ExecView(
            -1, po.order_id, po.contract, f"sim.{po.sim_id}.bag{po.combo_execs}",
            when.strftime("%Y%m%d %H:%M:%S US/Eastern"), self.account, "SMART",
            "SLD" if po.action == "SELL" else "BOT", float(qty), round(price, 4),
            po.perm_id, po.client_id, float(state.filled), state.avg_fill_price or price,
            po.order_ref)

    def _status_msg(self, po: PeerOrder) -> list[Field]:
        return order_status(po.order_id, po.status, po.filled, po.remaining,
                            po.avg_fill_price, po.perm_id, po.last_fill_price, po.client_id)

    def _on_fill(self, fill: Fill) -> None:
        po = self._by_sim.get(fill.order_id)
        if po is None:
            return
        po.last_fill_price = fill.price
        s = self._by_client.get(po.client_id)
        if s is not None:
            for msg in self._fill_msgs(s.version, -1, po, fill):
                s.send(msg)
        self._schedule_refresh()

    def _fill_msgs(self, version: int, req_id: int, po: PeerOrder | None,
                   fill: Fill) -> list[list[Field]]:
        inst = self.book.option(fill.contract) if fill.contract else self.book.stock(fill.symbol)
        qty, value = (po.execs.get(inst.con_id, (0.0, 0.0)) if po else (0.0, 0.0))
        if req_id == -1 and po is not None:
            qty, value = qty + fill.quantity, value + fill.quantity * fill.price
            po.execs[inst.con_id] = (qty, value)
        else:
            qty, value = float(fill.quantity), fill.quantity * fill.price
        view = ExecView(
            req_id, po.order_id if po else 0, inst.fields(), fill.exec_id,
            fill.time.astimezone(NEW_YORK).strftime("%Y%m%d %H:%M:%S US/Eastern"),
            self.account, "CBOE" if inst.option else "ISLAND",
            "SLD" if fill.side == "SELL" else "BOT", float(fill.quantity), fill.price,
            fill.perm_id or (po.perm_id if po else 0), po.client_id if po else 0,
            qty, value / qty if qty else fill.price, fill.order_ref)
        return [exec_details(version, view), commission_report(fill.exec_id, fill.commission)]

    def _lock(self, client_id: int) -> asyncio.Lock:
        return self._locks.setdefault(client_id, asyncio.Lock())

    def _peer_order(self, client_id: int, order_id: int, request: OrderRequest,
                    placed: PlacedOrder | None = None) -> PeerOrder:
        if request.legs:
            contract = bag_contract_fields(request.underlying)
        elif request.contract is not None:
            contract = self.book.option(request.contract).fields()
        else:
            contract = self.book.stock(request.underlying).fields()
        po = PeerOrder(client_id, order_id, contract, request.action, float(request.quantity),
                       request.order_type.value, request.tif, self.account, request.order_ref,
                       request, remaining=float(request.quantity))
        if placed is not None:
            po.action, po.quantity, po.tif = placed.action, placed.quantity, placed.tif
            po.account = placed.account or self.account
            po.open_close = placed.open_close or "O"
            po.combo_legs, po.combo_prices = placed.combo_legs, placed.combo_prices
        elif request.legs:
            po.combo_legs = [ComboLegSpec(self.book.option(leg.contract).con_id, leg.ratio,
                                          leg.action, "SMART") for leg in request.legs]
        return po

    async def _request_for(self, placed: PlacedOrder) -> OrderRequest:
        """The simulator's OrderRequest for a placeOrder, refused as TWS would."""
        if placed.order_type not in ("LMT", "MKT"):
            raise BrokerError(f"Unsupported order type {placed.order_type!r} (simulator)", 387)
        if placed.tif not in ("", "DAY", "GTC"):
            raise BrokerError(f"Unsupported time in force {placed.tif!r} (simulator)", 387)
        if placed.algo_strategy:
            raise BrokerError("Algo orders are not simulated", 387)
        wc = placed.contract
        kwargs: dict[str, Any] = {}
        if wc.sec_type == "BAG":
            legs = []
            for spec in placed.combo_legs:
                inst = self.book.by_con_id(spec.con_id)
                if inst is None or inst.option is None:
                    raise BrokerError(f"Invalid combo leg conId {spec.con_id}", 200)
                # TWS reverses every leg of a SELL combo; the simulator wants each leg's
                # real side.
                side = spec.action if placed.action == "BUY" else (
                    "SELL" if spec.action == "BUY" else "BUY")
                legs.append(ComboLeg(inst.option, side, spec.ratio))  # type: ignore[arg-type]
            kwargs["legs"] = tuple(legs)
            kwargs["symbol"] = wc.symbol
        else:
            found = await resolve(self.book, self.sim, wc)
            if len(found) != 1 or found[0].sec_type == "IND":
                raise UnknownContract
            if found[0].option is not None:
                kwargs["contract"] = found[0].option
            else:
                kwargs["stock"] = found[0].symbol
        try:
            return OrderRequest(
                action=placed.action,  # type: ignore[arg-type]
                quantity=int(placed.quantity), order_ref=placed.order_ref,
                order_type=OrderType(placed.order_type),
                limit_price=placed.lmt_price if placed.order_type == "LMT" else None,
                tif="GTC" if placed.tif == "GTC" else "DAY", **kwargs)
        except ValueError as exc:
            raise BrokerError(f"Order rejected - reason:{exc}", 201) from None

    async def _h_placeOrder(self, s: Session, fields: list[str]) -> None:
        placed = parse_place_order(fields, s.version)
        cid = s.client_id
        assert cid is not None
        self._next_ids[cid] = max(self._next_ids.get(cid, 1), placed.order_id + 1)
        if self.read_only_api:
            s.error(placed.order_id, 321, READ_ONLY_TEXT)
            return
        if placed.what_if:
            await self._what_if(s, placed)
            return
        async with self._lock(cid):
            existing = self._orders.get((cid, placed.order_id))
            if existing is not None:
                await self._modify(s, existing, placed)
            else:
                await self._place(s, placed)

    async def _what_if(self, s: Session, placed: PlacedOrder) -> None:
        assert s.client_id is not None
        request = await self._request_for(placed)
        po = self._peer_order(s.client_id, placed.order_id, request, placed)
        if self.whatif_sentinel_first:
            s.send(open_order(s.version, po.view(what_if=True)))  # every figure unset
        m = await self.sim.what_if(request)
        margin = MarginState(m.init_margin_before, m.maint_margin_before,
                             m.equity_with_loan_before, m.init_margin_after,
                             m.maint_margin_after, m.equity_with_loan_after, m.commission,
                             m.warning)
        s.send(open_order(s.version, po.view(what_if=True, margin=margin)))

    async def _place(self, s: Session, placed: PlacedOrder) -> None:
        assert s.client_id is not None
        try:
            request = await self._request_for(placed)
        except BrokerError as exc:
            s.error(placed.order_id, exc.code or 201, str(exc))
            return
        po = self._peer_order(s.client_id, placed.order_id, request, placed)
        self._orders[(s.client_id, placed.order_id)] = po
        self._pending.append((request, po))
        link_drops = self.sim.faults.disconnect_after_accept
        if link_drops:
            # The simulator accepts the order and then loses its link: to the client that
            # is a socket that dies before any acknowledgement.
            s.muted = True
            self._quiet_link = True
        try:
            await self.sim.place_order(request)
        except BrokerDisconnected:
            if not link_drops:
                raise
            await self.sim.connect()
            s.close()
        except BrokerError as exc:
            if po.sim_id is None:
                del self._orders[(s.client_id, placed.order_id)]
            s.error(placed.order_id, exc.code or 201, str(exc))
        finally:
            self._quiet_link = False
            if link_drops and not s.closed:
                s.muted = False  # the simulator refused before the link could drop
            self._pending = [(r, p) for r, p in self._pending if p is not po]

    async def _modify(self, s: Session, po: PeerOrder, placed: PlacedOrder) -> None:
        if po.sim_id is None or placed.lmt_price is None:
            s.error(po.order_id, 103, "Duplicate order id")
            return
        try:
            await self.sim.modify_order(po.sim_id, placed.lmt_price)
        except BrokerDisconnected:
            raise
        except BrokerError as exc:
            s.error(po.order_id, exc.code or 161, str(exc))

    async def _h_cancelOrder(self, s: Session, fields: list[str]) -> None:
        assert s.client_id is not None
        order_id = int(fields[2])
        if self.read_only_api:
            s.error(order_id, 321, READ_ONLY_TEXT)
            return
        async with self._lock(s.client_id):
            po = self._orders.get((s.client_id, order_id))
            if po is None or po.sim_id is None:
                s.error(order_id, 135, f"Can't find order with id = {order_id}")
                return
            if po.working and po.status != "PendingCancel":
                # TWS acknowledges a cancel before the exchange confirms it.
                po.status = "PendingCancel"
                s.send(self._status_msg(po))
            try:
                await self.sim.cancel_order(po.sim_id)
            except BrokerDisconnected:
                raise
            except BrokerError:
                s.error(order_id, 161, "Cancel attempted when order is not in a cancellable "
                        f"state. Order permId ={po.perm_id}")

    async def _h_reqGlobalCancel(self, s: Session, fields: list[str]) -> None:
        for po in list(self._by_sim.values()):
            if po.working and po.sim_id is not None:
                with contextlib.suppress(BrokerError):
                    await self.sim.cancel_order(po.sim_id)

    def _open_orders(self, client_id: int | None) -> list[PeerOrder]:
        return [po for po in self._by_sim.values()
                if po.working and (client_id is None or po.client_id == client_id)]

    async def _send_open_orders(self, s: Session, everyone: bool) -> None:
        for po in self._open_orders(None if everyone else s.client_id):
            s.send(open_order(s.version, po.view()))
            s.send(self._status_msg(po))
        s.send([53, 1])

    async def _h_reqOpenOrders(self, s: Session, fields: list[str]) -> None:
        await self._send_open_orders(s, everyone=False)

    async def _h_reqAllOpenOrders(self, s: Session, fields: list[str]) -> None:
        await self._send_open_orders(s, everyone=True)

    async def _h_reqCompletedOrders(self, s: Session, fields: list[str]) -> None:
        s.send([102])  # completed orders themselves are not replayed

    async def _h_reqExecutions(self, s: Session, fields: list[str]) -> None:
        req_id = int(fields[2])
        for fill in await self.sim.fills():
            po = self._by_sim.get(fill.order_id)
            if po is not None and po.client_id not in (s.client_id, 0):
                continue  # another client's executions are not this client's to see
            for msg in self._fill_msgs(s.version, req_id, po, fill):
                s.send(msg)
        s.send([55, 1, req_id])
