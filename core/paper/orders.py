"""Order messages: the placeOrder parser and the openOrder, orderStatus, execDetails and
commissionReport encoders.

Both heavy layouts are positional and gated by server version and by content, so they
follow ib_async 2.1.0's `Client.placeOrder` and `Decoder.openOrder` line by line. The
parser insists on consuming every field: a miscount fails loudly here instead of being
misread as another field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .codec import UNSET_DOUBLE, UNSET_DOUBLE_TEXT, Field, FieldReader, ProtocolError
from .contracts import WireContract, read_contract


@dataclass(frozen=True)
class ComboLegSpec:
    con_id: int
    ratio: int
    action: str
    exchange: str


@dataclass
class PlacedOrder:
    """What a client's placeOrder says, as far as the simulator can act on it."""

    order_id: int
    contract: WireContract
    action: str
    quantity: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    account: str
    open_close: str
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool
    what_if: bool
    combo_legs: list[ComboLegSpec] = field(default_factory=list)
    combo_prices: list[float | None] = field(default_factory=list)
    algo_strategy: str = ""
    conditions: int = 0


def parse_place_order(fields: list[str], version: int) -> PlacedOrder:
    """placeOrder (3) exactly as `Client.placeOrder` encodes it at `version`."""
    r = FieldReader(fields)
    order_id = r.integer() or 0
    contract = read_contract(r)
    r.skip(2)  # secIdType, secId
    action = r.text()
    quantity = r.number() or 0.0
    order_type = r.text()
    lmt_price, aux_price = r.number(), r.number()
    tif, _oca_group, account, open_close = r.text(), r.text(), r.text(), r.text()
    r.integer()  # origin
    order_ref = r.text()
    transmit = r.flag()
    parent_id = r.integer() or 0
    r.skip(4)  # blockOrder, sweepToFill, displaySize, triggerMethod
    outside_rth = r.flag()
    r.flag()  # hidden
    legs: list[ComboLegSpec] = []
    prices: list[float | None] = []
    if contract.sec_type == "BAG":
        for _ in range(r.count()):
            con_id, ratio, leg_action, exchange = (r.integer() or 0, r.integer() or 0,
                                                   r.text(), r.text())
            r.skip(4)  # openClose, shortSaleSlot, designatedLocation, exemptCode
            legs.append(ComboLegSpec(con_id, ratio, leg_action, exchange))
        prices = [r.number() for _ in range(r.count())]
        r.skip(2 * r.count())  # smartComboRoutingParams
    r.text()  # deprecated sharesAllocation
    r.skip(6)  # discretionaryAmt, goodAfterTime, goodTillDate, faGroup/Method/Percentage
    if version < 177:
        r.text()  # faProfile
    # modelCode .. deltaNeutralAuxPrice: 24 fields, one of them the delta-neutral type.
    r.skip(22)
    delta_neutral_type = r.text()
    r.number()  # deltaNeutralAuxPrice
    if delta_neutral_type:
        r.skip(8)
    r.skip(6)  # continuousUpdate .. scaleSubsLevelSize
    increment = r.number()
    if increment is not None and 0 < increment < UNSET_DOUBLE:
        r.skip(7)
    r.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if r.text():  # hedgeType
        r.text()  # hedgeParam
    r.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if r.flag():  # delta-neutral contract
        r.skip(3)
    algo = r.text()
    if algo:
        r.skip(2 * r.count())
    r.text()  # algoId
    what_if = r.flag()
    r.skip(4)  # orderMiscOptions, solicited, randomizeSize, randomizePrice
    if order_type in ("PEG BENCH", "PEGBENCH"):
        r.skip(5)
    conditions = r.count()
    if conditions:
        # Each condition type has its own length (ib_async's dataclassAsTuple): the peer
        # cannot walk past them, and PutDesk never sends any.
        raise ProtocolError("order conditions are not supported by the peer")
    r.skip(19)  # adjustedOrderType .. usePriceMgmtAlgo
    for gate in (158, 160, 162, 166, 169):
        if version >= gate:
            r.text()  # duration, postToAts, autoCancelParent, advancedErrorOverride, manual time
    if version >= 170:
        if contract.exchange == "IBKRATS":
            r.text()  # minTradeQty
        if order_type in ("PEG BEST", "PEGBEST"):
            r.text()
            if r.number() == math.inf:  # competeAgainstBestOffset
                r.skip(2)
        elif order_type in ("PEG MID", "PEGMID"):
            r.skip(2)
    r.end()
    return PlacedOrder(order_id, contract, action, quantity, order_type, lmt_price, aux_price,
                       tif, account, open_close, order_ref, transmit, parent_id, outside_rth,
                       what_if, legs, prices, algo, conditions)


#: The placeOrder field index of whatIf for a plain order (the notes' sanity figure).
def what_if_index(version: int) -> int:
    return 84 if version >= 177 else 85


@dataclass
class MarginState:
    """OrderState's what-if block. Margin figures travel as strings; unset ones as the
    unset-double text, which ib_async's what-if check (`float(initMarginChange)`) reads."""

    init_before: float | None = None
    maint_before: float | None = None
    equity_before: float | None = None
    init_after: float | None = None
    maint_after: float | None = None
    equity_after: float | None = None
    commission: float | None = None
    warning: str = ""

    def fields(self) -> list[Field]:
        def text(v: float | None) -> str:
            return UNSET_DOUBLE_TEXT if v is None else f"{v:.2f}"

        def change(after: float | None, before: float | None) -> str:
            return text(None if after is None or before is None else after - before)

        return [text(self.init_before), text(self.maint_before), text(self.equity_before),
                change(self.init_after, self.init_before),
                change(self.maint_after, self.maint_before),
                change(self.equity_after, self.equity_before),
                text(self.init_after), text(self.maint_after), text(self.equity_after),
                UNSET_DOUBLE if self.commission is None else self.commission,
                UNSET_DOUBLE, UNSET_DOUBLE,  # min/max commission
                "USD", self.warning]


@dataclass
class OrderView:
    """Everything an openOrder message carries about one order."""

    order_id: int
    client_id: int
    perm_id: int
    contract: list[Field]  # the 11-field block (Instrument.fields or a BAG block)
    action: str
    quantity: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    account: str
    order_ref: str
    open_close: str = "O"
    outside_rth: bool = False
    what_if: bool = False
    status: str = "Submitted"
    margin: MarginState = field(default_factory=MarginState)
    combo_legs: list[ComboLegSpec] = field(default_factory=list)
    combo_prices: list[float | None] = field(default_factory=list)


def open_order(version: int, v: OrderView) -> list[Field]:
    """openOrder (5) exactly as ib_async's `Decoder.openOrder` reads it at `version`."""
    f: list[Field] = [5, v.order_id, *v.contract,
                      v.action, v.quantity, v.order_type, v.lmt_price, v.aux_price, v.tif,
                      "", v.account, v.open_close, 0, v.order_ref, v.client_id, v.perm_id,
                      v.outside_rth, False, 0.0, "", "", "", "", ""]
    # ^ ocaGroup, origin; hidden, discretionaryAmt, goodAfterTime, sharesAllocation,
    #   faGroup, faMethod, faPercentage
    if version < 177:
        f.append("")  # faProfile
    f += ["", "", "", None, "", 0, "", -1,  # modelCode .. exemptCode
          0, None, None, None, None, None,  # auctionStrategy .. stockRangeUpper
          None, False, False, False, None, 0,  # displaySize .. ocaType
          False, False, None, 0, 0,  # eTradeOnly, firmQuoteOnly, nbboPriceCap, parent, trigger
          None, None, "", None,  # volatility, volatilityType, deltaNeutral type/aux
          False, None, None, None, None, None]  # continuousUpdate .. basisPointsType
    legs = v.combo_legs
    f.append(",".join(f"{leg.con_id}|{leg.ratio}" for leg in legs))  # comboLegsDescrip
    f.append(len(legs))
    for leg in legs:
        f += [leg.con_id, leg.ratio, leg.action, leg.exchange or "SMART", 0, 0, "", -1]
    f.append(len(v.combo_prices))
    f += list(v.combo_prices)
    f.append(0)  # smartComboRoutingParams
    f += [None, None, None]  # scale init/subs level size, price increment
    f.append("")  # hedgeType
    f += [False, "", "", False, False]  # optOutSmartRouting .. notHeld, dnc present
    f.append("")  # algoStrategy
    f += [False, v.what_if, v.status, *v.margin.fields(), False, False]
    f.append(0)  # conditions
    f += ["None", None, None, None, None, None, None, 0,  # adjusted* .. adjustableTrailingUnit
          "", "", "", None,  # softDollarTier name/val/displayName, cashQty
          False, False, False, None]  # dontUseAutoPriceForHedge .. usePriceMgmtAlgo
    if version >= 158:
        f.append(None)  # duration (IBKR's decoder: MIN_SERVER_VER_DURATION = 158)
    if version >= 160:
        f.append(None)  # postToAts
    if version >= 162:
        f.append(False)  # autoCancelParent
    if version >= 170:
        f += [None, None, None, None, None]  # minTradeQty .. midOffsetAtHalf
    return f


def order_status(order_id: int, status: str, filled: float, remaining: float,
                 avg_fill_price: float, perm_id: int, last_fill_price: float,
                 client_id: int) -> list[Field]:
    """orderStatus (3): no version field since server version 131."""
    return [3, order_id, status, filled, remaining, avg_fill_price, perm_id, 0,
            last_fill_price, client_id, "", 0.0]


@dataclass(frozen=True)
class ExecView:
    req_id: int
    order_id: int
    contract: list[Field]
    exec_id: str
    time: str  # 'YYYYMMDD HH:MM:SS Zone'
    account: str
    exchange: str
    side: str  # BOT / SLD
    shares: float
    price: float
    perm_id: int
    client_id: int
    cum_qty: float
    avg_price: float
    order_ref: str


def exec_details(version: int, e: ExecView) -> list[Field]:
    """execDetails (11): no version field since server version 136."""
    f: list[Field] = [11, e.req_id, e.order_id, *e.contract, e.exec_id, e.time, e.account,
                      e.exchange, e.side, e.shares, e.price, e.perm_id, e.client_id, 0,
                      e.cum_qty, e.avg_price, e.order_ref, "", "", "", 2]
    if version >= 178:
        f.append(False)  # pendingPriceRevision
    return f


def commission_report(exec_id: str, commission: float | None) -> list[Field]:
    # realizedPNL and yield are unset for an opening trade, as TWS sends them.
    return [59, 1, exec_id, UNSET_DOUBLE if commission is None else commission, "USD",
            UNSET_DOUBLE, UNSET_DOUBLE, ""]
