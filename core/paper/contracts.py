"""Contracts: stable conIds, resolving a client's contract against the simulator, and
the contract blocks of server messages.

TWS identifies every instrument by a conId that never changes; clients qualify a
contract once and then send the conId alone (combo legs are *only* conIds). The book
hands out a deterministic conId per instrument so the same scenario gives the same ids
in every run and every peer.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Literal

from core.broker.base import OptionContract

from .codec import Field, FieldReader

if TYPE_CHECKING:
    from core.broker.sim import SimBroker

SecType = Literal["STK", "IND", "OPT"]

#: The conId IBKR gives every USD combo (BAG) contract.
BAG_CON_ID = 28812380
MULTIPLIER = "100"


class UnknownContract(Exception):
    """No instrument matches: TWS answers error 200."""

    code = 200
    text = "No security definition has been found for the request"


@dataclass(frozen=True)
class Instrument:
    sec_type: SecType
    symbol: str
    con_id: int
    option: OptionContract | None = None

    @property
    def last_trade(self) -> str:
        return f"{self.option.expiration:%Y%m%d}" if self.option else ""

    @property
    def strike(self) -> float:
        return self.option.strike if self.option else 0.0

    @property
    def right(self) -> str:
        return self.option.right if self.option else ""

    @property
    def multiplier(self) -> str:
        return MULTIPLIER if self.option else ""

    @property
    def local_symbol(self) -> str:
        if self.option is None:
            return self.symbol
        o = self.option
        return f"{o.symbol:<6}{o.expiration:%y%m%d}{o.right}{round(o.strike * 1000):08d}"

    @property
    def home_exchange(self) -> str:
        return "CBOE" if self.sec_type == "IND" else "SMART"

    def fields(self, exchange: str | None = None) -> list[Field]:
        """The 11-field contract block of openOrder, execDetails, position and
        updatePortfolio (the last puts primaryExchange where the others put exchange)."""
        return [self.con_id, self.symbol, self.sec_type, self.last_trade, self.strike,
                self.right, self.multiplier,
                self.home_exchange if exchange is None else exchange, "USD",
                self.local_symbol, self.symbol]


def bag_contract_fields(symbol: str) -> list[Field]:
    """A combo's 11-field contract block; its legs travel separately."""
    return [BAG_CON_ID, symbol, "BAG", "", 0.0, "", "", "SMART", "USD", "", symbol]


@dataclass(frozen=True)
class WireContract:
    """The 12 contract fields ib_async's `send` writes for a Contract."""

    con_id: int
    symbol: str
    sec_type: str
    last_trade: str
    strike: float
    right: str
    multiplier: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str


def read_contract(r: FieldReader) -> WireContract:
    return WireContract(r.integer() or 0, r.text().upper(), r.text().upper(), r.text(),
                        r.number() or 0.0, r.text().upper(), r.text(), r.text().upper(),
                        r.text(), r.text().upper(), r.text(), r.text())


class ContractBook:
    """Every instrument the peer has named, by a conId stable across runs."""

    def __init__(self) -> None:
        self._by_id: dict[int, Instrument] = {}
        self._by_key: dict[str, Instrument] = {}

    def _get(self, key: str, sec_type: SecType, symbol: str,
             option: OptionContract | None = None) -> Instrument:
        found = self._by_key.get(key)
        if found is not None:
            return found
        con_id = 100_000_000 + zlib.crc32(key.encode()) % 800_000_000
        while con_id in self._by_id or con_id == BAG_CON_ID:
            con_id += 1
        inst = Instrument(sec_type, symbol, con_id, option)
        self._by_id[con_id] = inst
        self._by_key[key] = inst
        return inst

    def stock(self, symbol: str) -> Instrument:
        return self._get(f"STK {symbol}", "STK", symbol)

    def index(self, symbol: str) -> Instrument:
        return self._get(f"IND {symbol}", "IND", symbol)

    def option(self, contract: OptionContract) -> Instrument:
        return self._get(f"OPT {contract.key}", "OPT", contract.symbol, contract)

    def by_con_id(self, con_id: int) -> Instrument | None:
        return self._by_id.get(con_id)

    def options_of(self, symbol: str) -> list[Instrument]:
        return [i for i in self._by_id.values() if i.option and i.symbol == symbol]


_RIGHTS = {"P": "P", "PUT": "P", "C": "C", "CALL": "C", "": ""}


async def resolve(book: ContractBook, sim: SimBroker, wc: WireContract) -> list[Instrument]:
    """The instruments matching a client's contract (several when it is partial, as TWS
    answers). Raises UnknownContract as TWS answers error 200."""
    if wc.con_id:
        inst = book.by_con_id(wc.con_id)
        if inst is None:
            raise UnknownContract
        return [inst]
    if wc.currency not in ("", "USD"):
        raise UnknownContract
    symbol = wc.symbol
    if wc.sec_type == "STK":
        held = {p.symbol for p in await sim.positions() if p.sec_type == "STK"}
        if symbol in sim.symbols() or symbol in held:
            return [book.stock(symbol)]
        raise UnknownContract
    if wc.sec_type == "IND":
        if symbol == "VIX" and wc.exchange in ("", "CBOE", "SMART"):
            return [book.index(symbol)]
        raise UnknownContract
    if wc.sec_type == "OPT":
        return await _options(book, sim, wc)
    raise UnknownContract


async def _options(book: ContractBook, sim: SimBroker, wc: WireContract) -> list[Instrument]:
    right = _RIGHTS.get(wc.right)
    if right is None or (wc.multiplier not in ("", MULTIPLIER)):
        raise UnknownContract
    chain = await sim.option_chain(wc.symbol)
    if chain is None:
        raise UnknownContract

    def exp_ok(expiration: date) -> bool:
        return not wc.last_trade or f"{expiration:%Y%m%d}".startswith(wc.last_trade)

    def strike_ok(strike: float) -> bool:
        return not wc.strike or abs(strike - wc.strike) <= 1e-6

    found: dict[OptionContract, Instrument] = {}
    # Contracts already held or traded are real even off the generated chain grid.
    for inst in book.options_of(wc.symbol):
        o = inst.option
        assert o is not None
        if exp_ok(o.expiration) and strike_ok(o.strike) and right in ("", o.right):
            found[o] = inst
    for exp in filter(exp_ok, chain.expirations):
        for strike in filter(strike_ok, chain.strikes):
            for r in ([right] if right else ["C", "P"]):
                oc = OptionContract(wc.symbol, exp, strike, r)  # type: ignore[arg-type]
                if oc not in found:
                    found[oc] = book.option(oc)
    if wc.local_symbol:
        found = {k: v for k, v in found.items() if v.local_symbol == wc.local_symbol}
    if not found:
        raise UnknownContract
    return [found[k] for k in sorted(found)]


def contract_details(version: int, req_id: int, inst: Instrument, und_con_id: int,
                     long_name: str, industry: str) -> list[Field]:
    """contractData (10) exactly as ib_async's `Decoder.contractDetails` reads it."""
    head: list[Field] = [10]
    if version < 164:
        head.append(8)  # the message version field, gone from 164
    head += [req_id, inst.symbol, inst.sec_type, inst.last_trade, inst.strike, inst.right,
             inst.home_exchange, "USD", inst.local_symbol, inst.symbol, inst.symbol,
             inst.con_id, 0.01]
    if version < 164:
        head.append(1)  # mdSizeMultiplier, obsolete
    is_opt = inst.option is not None
    head += [
        inst.multiplier,
        "LMT,MKT" if inst.sec_type != "IND" else "",
        "SMART,CBOE" if inst.sec_type != "IND" else "CBOE",
        1,  # priceMagnifier
        und_con_id,
        long_name,
        "",  # primaryExchange: the simulator has no listing venue
        f"{inst.option.expiration:%Y%m}" if inst.option else "",
        industry, "", "",
        "US/Eastern",
        "", "",  # trading and liquid hours: ib_async parses them only when asked
        "", "",  # evRule, evMultiplier
        0,  # secIdList count
        1,  # aggGroup
        inst.symbol if is_opt else "",
        "STK" if is_opt else "",
        "26,26" if is_opt else "26",
        inst.last_trade,
        "COMMON" if inst.sec_type == "STK" else "",
    ]
    if version == 163:
        head.append(1)  # suggestedSizeIncrement
    if version >= 164:
        head += [1, 1, 1]  # minSize, sizeIncrement, suggestedSizeIncrement
    return head
