"""Scenario files (version 1): the simulator's whole world in one JSON file.

    {"version": 1, "now": "2026-11-24T10:30:00-05:00",
     "account": {"id": "DU0000001", "cash": 100000.0},
     "vix": 18.5,
     "underlyings": {"AAPL": {"price": 230.0, "iv": 0.28, "iv_52w_low": 0.18,
                              "iv_52w_high": 0.55, "earnings": "2027-01-29",
                              "sector": "Technology", "skew": 0.6}},
     "positions": [{"symbol": "AAPL", "right": "P", "strike": 200.0,
                    "expiration": "2026-12-18", "quantity": -2, "avg_price": 1.85,
                    "opened": "2026-11-10", "underlying_at_entry": 235.0, "roll_count": 0}],
     "stock_positions": [{"symbol": "XYZ", "shares": 200, "avg_price": 41.0}],
     "equity_history": [{"date": "2026-11-23", "net_liquidation": 101000.0}],
     "option_quotes": {"AAPL 20261218 200 P": {"bid": 1.20, "ask": 1.35, "delta": -0.12,
                                               "iv": 0.27}}}

Everything but version, now and account is optional. Beyond DESIGN.md's example an
underlying may set `skew` (how much higher IV gets per unit of log-moneyness below the
money; default 0.6) and `dividend_yield` (default 0). A stock position's symbol need not
be an underlying (it is then valued at its average price). A bad file is refused with
the JSON path of the first bad field, e.g. `underlyings.AAPL.price: ...`.
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from core.broker.base import OptionContract


class ScenarioError(Exception):
    """A scenario file cannot be used. The message starts with the JSON path."""


class _Strict(BaseModel):
    # allow_inf_nan: JSON's NaN, Infinity and 1e999 are refused like any bad number
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Account(_Strict):
    id: str = Field(min_length=1)
    cash: float


class Underlying(_Strict):
    price: float = Field(gt=0)
    iv: float = Field(gt=0, le=5)
    iv_52w_low: float | None = Field(default=None, gt=0, le=5)
    iv_52w_high: float | None = Field(default=None, gt=0, le=5)
    earnings: date | None = None
    sector: str | None = None
    skew: float = Field(default=0.6, ge=0, le=5)
    dividend_yield: float = Field(default=0.0, ge=0, le=0.5)

    @model_validator(mode="after")
    def _range(self) -> Underlying:
        if self.iv_52w_low is not None and self.iv_52w_high is not None and (
                self.iv_52w_low > self.iv_52w_high):
            raise ValueError("iv_52w_low is greater than iv_52w_high")
        return self


@dataclass(frozen=True)
class SeedTrade:
    contract: OptionContract
    quantity: int
    avg_price: float
    opened: date | None
    underlying_at_entry: float | None
    roll_count: int


class OptionPositionSpec(_Strict):
    symbol: str
    right: Literal["P", "C"] = "P"
    strike: float = Field(gt=0)
    expiration: date
    quantity: int = Field(ge=-1_000_000, le=1_000_000)
    avg_price: float = Field(ge=0)
    opened: date | None = None
    underlying_at_entry: float | None = Field(default=None, gt=0)
    roll_count: int = Field(default=0, ge=0, le=1_000)

    @field_validator("quantity")
    @classmethod
    def _nonzero(cls, v: int) -> int:
        if v == 0:
            raise ValueError("must not be 0")
        return v

    @property
    def contract(self) -> OptionContract:
        return OptionContract(self.symbol, self.expiration, self.strike, self.right)


class StockPositionSpec(_Strict):
    symbol: str = Field(min_length=1)
    shares: int = Field(ge=-1_000_000_000, le=1_000_000_000)
    avg_price: float = Field(gt=0)

    @field_validator("shares")
    @classmethod
    def _nonzero(cls, v: int) -> int:
        if v == 0:
            raise ValueError("must not be 0")
        return v


class EquityPoint(_Strict):
    date: date
    net_liquidation: float = Field(gt=0)


class QuoteSpec(_Strict):
    bid: float = Field(ge=0)
    ask: float = Field(gt=0)
    delta: float | None = Field(default=None, ge=-1, le=1)
    iv: float | None = Field(default=None, gt=0, le=5)

    @model_validator(mode="after")
    def _crossed(self) -> QuoteSpec:
        if self.bid > self.ask:
            raise ValueError("bid is above ask")
        return self


class Scenario(_Strict):
    version: Literal[1]
    now: AwareDatetime
    account: Account
    vix: float | None = Field(default=None, gt=0, le=200)
    underlyings: dict[str, Underlying] = Field(default_factory=dict)
    positions: list[OptionPositionSpec] = Field(default_factory=list)
    stock_positions: list[StockPositionSpec] = Field(default_factory=list)
    equity_history: list[EquityPoint] = Field(default_factory=list)
    option_quotes: dict[str, QuoteSpec] = Field(default_factory=dict)

    @field_validator("underlyings")
    @classmethod
    def _symbols(cls, v: dict[str, Underlying]) -> dict[str, Underlying]:
        for symbol in v:
            if not symbol or symbol != symbol.strip().upper():
                raise ValueError(f"symbol {symbol!r} must be upper case")
        return v

    @staticmethod
    def from_data(data: object) -> Scenario:
        try:
            scenario = Scenario.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            raise ScenarioError(f"{_json_path(first['loc'])}: {_message(first)}") from None
        scenario._check_references()
        return scenario

    def open_trades(self) -> list[SeedTrade]:
        """The scenario's short options as the trades PutDesk would have recorded when it
        opened them (entry premium, date, underlying at entry, rolls)."""
        return [SeedTrade(p.contract, p.quantity, p.avg_price, p.opened,
                          p.underlying_at_entry, p.roll_count)
                for p in self.positions if p.quantity < 0]

    def equity_closes(self) -> list[tuple[datetime, float]]:
        """The equity history as (16:00 New York on that date, net liquidation)."""
        from datetime import time as time_of_day

        from core.clock import NEW_YORK

        return [(datetime.combine(p.date, time_of_day(16, 0), NEW_YORK), p.net_liquidation)
                for p in self.equity_history]

    def _check_references(self) -> None:
        for i, pos in enumerate(self.positions):
            if pos.symbol not in self.underlyings:
                raise ScenarioError(f"positions[{i}].symbol: {pos.symbol!r} is not in underlyings")
        for key in self.option_quotes:
            try:
                contract = OptionContract.parse_key(key)
            except ValueError as exc:
                raise ScenarioError(f"option_quotes.{key}: {exc}") from None
            if not 0 < contract.strike < math.inf:  # float() took 'nan', '-5', 'inf'
                raise ScenarioError(f"option_quotes.{key}: the strike must be a number "
                                    "greater than 0")
            if contract.symbol not in self.underlyings:
                raise ScenarioError(f"option_quotes.{key}: {contract.symbol!r} is not in "
                                    "underlyings")


def _json_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "literal")) or part in ("union",):
            continue
        else:
            out += f".{part}" if out else part
    return out or "(file)"


def _message(error: Any) -> str:
    msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if "input" in error and error.get("type") not in ("missing",):
        value = error["input"]
        if isinstance(value, str | int | float):
            msg += f" (got {value!r})"
    return msg


#: The default size limit of a scenario file (PUTDESK_SCENARIO_MAX_MB): the demo is a
#: few kilobytes; a world of thousands of positions is well under a megabyte.
DEFAULT_MAX_BYTES = 16 * 1024 * 1024


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _read_limited(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`. Opened non-blocking so a FIFO
    is refused at once instead of waiting for a writer; /dev/zero and its kind are refused
    before a byte is read; a file that grows while read stops at the limit."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb", buffering=0) as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ScenarioError(f"(file): {path} is {_file_kind(info.st_mode)}, not a "
                                "regular file")
        if info.st_size > max_bytes:
            raise ScenarioError(_too_big(path, info.st_size, max_bytes))
        os.set_blocking(fd, True)
        data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ScenarioError(_too_big(path, len(data), max_bytes))
        return data


def _too_big(path: Path, size: int, max_bytes: int) -> str:
    return (f"(file): {path} is {size:,} bytes, above the limit of {max_bytes:,} "
            "(PUTDESK_SCENARIO_MAX_MB)")


def load_scenario(path: Path | str, max_bytes: int = DEFAULT_MAX_BYTES) -> Scenario:
    path = Path(path)
    try:
        # utf-8-sig: a BOM (Windows editors) is fine
        text = _read_limited(path, max_bytes).decode("utf-8-sig")
    except OSError as exc:
        raise ScenarioError(f"(file): cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"(file): {path} is not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:  # a NUL in the path
        raise ScenarioError(f"(file): cannot read {path!r}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"(file): not valid JSON at line {exc.lineno} column {exc.colno}: "
                            f"{exc.msg}") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise ScenarioError(f"(file): not usable JSON: {exc}") from None
    except RecursionError:
        raise ScenarioError("(file): not usable JSON: nested too deeply") from None
    return Scenario.from_data(data)


def demo_scenario_path() -> Path:
    return Path(__file__).parents[1] / "data" / "scenarios" / "demo.json"


__all__ = ["Scenario", "ScenarioError", "datetime", "demo_scenario_path", "load_scenario"]
