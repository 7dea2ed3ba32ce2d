"""TWS API text protocol: framing, field encoding and decoding, unset sentinels.

Mirrors ib_async 2.1.0 (`client.py` `send`/`_prefix`, `decoder.py`): every frame is a
4-byte big-endian length and a payload of NUL-terminated text fields. The client writes
IBKR's "unset" numbers as empty fields; the server writes them either empty or as the
sentinels below, and which one matters: ib_async calls `float()`/`int()` on some fields
without an `or 0` fallback, so an empty field there is a decode error.
"""

from __future__ import annotations

import asyncio
import math
import re
import struct
from collections.abc import Iterable

#: IBKR's unset double and int as the server writes them.
UNSET_DOUBLE = 1.7976931348623157e308
UNSET_DOUBLE_TEXT = "1.7976931348623157E308"
UNSET_INTEGER = 2**31 - 1
#: tickOptionComputation's own unset values (ib_async maps -1/-2 to None; vega and theta
#: it keeps as -2, a quirk of ib_async 2.1.0).
UNSET_COMPUTED = -1.0
UNSET_GREEK = -2.0

HELLO_PREFIX = b"API\0"
MAX_FRAME = 16 * 1024 * 1024

Field = str | int | float | bool | None


def field_text(value: Field) -> str:
    """One server field. None is an empty field; bools are 0/1 as TWS writes them."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "Infinite"
        if value == UNSET_DOUBLE:
            return UNSET_DOUBLE_TEXT
        return repr(value)
    return value


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def encode(fields: Iterable[Field]) -> bytes:
    """A whole server message: length prefix and NUL-terminated fields."""
    return frame("".join(field_text(f) + "\0" for f in fields).encode())


def split_fields(payload: bytes) -> list[str]:
    """A frame's payload as fields (the trailing NUL leaves one empty item, dropped)."""
    fields = payload.decode(errors="backslashreplace").split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    return fields


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">I", await reader.readexactly(4))
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes is too large")
    return await reader.readexactly(size)


class ProtocolError(Exception):
    """The client sent something the peer cannot parse: a layout mismatch."""


_HELLO = re.compile(r"^v(\d+)(?:\.\.(\d+))?(?:\s+(.*))?$")


def parse_hello(payload: bytes) -> tuple[int, int, str]:
    """The client's version range 'v157..178 [+PACEAPI]' (no NUL terminator)."""
    m = _HELLO.match(payload.decode(errors="replace").strip("\0"))
    if not m:
        raise ProtocolError(f"bad client hello {payload!r}")
    low = int(m.group(1))
    high = int(m.group(2) or low)
    return low, high, m.group(3) or ""


class FieldReader:
    """A cursor over a client message's fields with the client's encoding rules.

    Client numbers are empty when unset (ib_async `send(makeEmpty=True)`), so the
    number readers return None for an empty field.
    """

    def __init__(self, fields: list[str], start: int = 1) -> None:
        self.fields = fields
        self.pos = start

    def text(self) -> str:
        if self.pos >= len(self.fields):
            raise ProtocolError(f"message ended at field {self.pos}: {self.fields[:3]}...")
        value = self.fields[self.pos]
        self.pos += 1
        return value

    def integer(self) -> int | None:
        raw = self.text()
        try:
            return int(raw) if raw else None
        except ValueError:
            raise ProtocolError(f"field {self.pos - 1} is not an int: {raw!r}") from None

    def count(self) -> int:
        return self.integer() or 0

    def number(self) -> float | None:
        raw = self.text()
        if not raw:
            return None
        if raw == "Infinite":
            return math.inf
        try:
            return float(raw)
        except ValueError:
            raise ProtocolError(f"field {self.pos - 1} is not a number: {raw!r}") from None

    def flag(self) -> bool:
        raw = self.text()
        if raw in ("", "0", "False"):
            return False
        if raw in ("1", "True"):
            return True
        raise ProtocolError(f"field {self.pos - 1} is not a bool: {raw!r}")

    def skip(self, n: int) -> None:
        for _ in range(n):
            self.text()

    def end(self) -> None:
        """Every field was consumed: anything left means the layouts disagree."""
        if self.pos != len(self.fields):
            raise ProtocolError(
                f"{len(self.fields) - self.pos} unread field(s) from {self.pos}: "
                f"{self.fields[self.pos:self.pos + 6]}")


#: Client request ids as ib_async's `Client` sends them, by its method names.
REQUEST_NAMES: dict[int, str] = {
    1: "reqMktData", 2: "cancelMktData", 3: "placeOrder", 4: "cancelOrder",
    5: "reqOpenOrders", 6: "reqAccountUpdates", 7: "reqExecutions", 8: "reqIds",
    9: "reqContractDetails", 10: "reqMktDepth", 11: "cancelMktDepth",
    12: "reqNewsBulletins", 13: "cancelNewsBulletins", 14: "setServerLogLevel",
    15: "reqAutoOpenOrders", 16: "reqAllOpenOrders", 17: "reqManagedAccts",
    18: "requestFA", 19: "replaceFA", 20: "reqHistoricalData", 21: "exerciseOptions",
    22: "reqScannerSubscription", 23: "cancelScannerSubscription",
    24: "reqScannerParameters", 25: "cancelHistoricalData", 49: "reqCurrentTime",
    50: "reqRealTimeBars", 51: "cancelRealTimeBars", 52: "reqFundamentalData",
    53: "cancelFundamentalData", 54: "calculateImpliedVolatility",
    55: "calculateOptionPrice", 56: "cancelCalculateImpliedVolatility",
    57: "cancelCalculateOptionPrice", 58: "reqGlobalCancel", 59: "reqMarketDataType",
    61: "reqPositions", 62: "reqAccountSummary", 63: "cancelAccountSummary",
    64: "cancelPositions", 65: "verifyRequest", 66: "verifyMessage",
    67: "queryDisplayGroups", 68: "subscribeToGroupEvents", 69: "updateDisplayGroup",
    70: "unsubscribeFromGroupEvents", 71: "startApi", 72: "verifyAndAuthRequest",
    73: "verifyAndAuthMessage", 74: "reqPositionsMulti", 75: "cancelPositionsMulti",
    76: "reqAccountUpdatesMulti", 77: "cancelAccountUpdatesMulti",
    78: "reqSecDefOptParams", 79: "reqSoftDollarTiers", 80: "reqFamilyCodes",
    81: "reqMatchingSymbols", 82: "reqMktDepthExchanges", 83: "reqSmartComponents",
    84: "reqNewsArticle", 85: "reqNewsProviders", 86: "reqHistoricalNews",
    87: "reqHeadTimeStamp", 88: "reqHistogramData", 89: "cancelHistogramData",
    90: "cancelHeadTimeStamp", 91: "reqMarketRule", 92: "reqPnL", 93: "cancelPnL",
    94: "reqPnLSingle", 95: "cancelPnLSingle", 96: "reqHistoricalTicks",
    97: "reqTickByTickData", 98: "cancelTickByTickData", 99: "reqCompletedOrders",
    100: "reqWshMetaData", 101: "cancelWshMetaData", 102: "reqWshEventData",
    103: "cancelWshEventData", 104: "reqUserInfo",
}

#: Where the request's id (reqId or orderId) sits, for errors aimed at that request.
REQUEST_ID_FIELD: dict[str, int] = {
    "reqMktData": 2, "cancelMktData": 2, "placeOrder": 1, "cancelOrder": 2,
    "reqExecutions": 2, "reqContractDetails": 2, "reqHistoricalData": 1,
    "cancelHistoricalData": 2, "reqAccountSummary": 2, "cancelAccountSummary": 2,
    "reqPositionsMulti": 2, "reqAccountUpdatesMulti": 2, "reqSecDefOptParams": 1,
    "reqMktDepth": 2, "reqRealTimeBars": 2, "reqFundamentalData": 2,
    "reqMatchingSymbols": 1, "reqHeadTimeStamp": 1, "reqPnL": 1, "reqPnLSingle": 1,
    "reqHistoricalTicks": 1, "reqTickByTickData": 1,
}


def request_name(fields: list[str]) -> str:
    try:
        return REQUEST_NAMES.get(int(fields[0]), f"msg{fields[0]}")
    except (ValueError, IndexError):
        return "unknown"


def request_id(name: str, fields: list[str]) -> int:
    """The id the client will match an answer (or error) against; -1 if none."""
    index = REQUEST_ID_FIELD.get(name)
    if index is None or index >= len(fields):
        return -1
    try:
        return int(fields[index])
    except ValueError:
        return -1
