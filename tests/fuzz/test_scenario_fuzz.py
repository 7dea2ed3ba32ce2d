"""Scenario files: a valid world, then damage (keys dropped, wrong types, negative
prices, IV out of range, crossed quotes, bad option keys, unknown keys, huge numbers,
NaN, text that is not JSON). The result is a Scenario that holds together or a
ScenarioError whose message starts with the JSON path of the damage; nothing else."""

from __future__ import annotations

import copy
import json
import math
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.broker.base import OptionContract
from core.broker.scenario import Scenario, ScenarioError, demo_scenario_path, load_scenario
from tests.fuzz import FUZZ, budget

SYMBOLS = ["AAPL", "MSFT", "SPY", "KO", "BRK.B", "X"]
Path_ = tuple[str | int, ...]


def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def _day(lo: date = date(2024, 1, 1), hi: date = date(2029, 12, 31)) -> st.SearchStrategy[str]:
    return st.dates(lo, hi).map(date.isoformat)


@st.composite
def underlyings(draw: st.DrawFn) -> dict[str, Any]:
    u: dict[str, Any] = {"price": draw(_floats(0.01, 5000)), "iv": draw(_floats(0.01, 5))}
    if draw(st.booleans()):
        lo, hi = sorted([draw(_floats(0.01, 5)), draw(_floats(0.01, 5))])
        u |= {"iv_52w_low": lo, "iv_52w_high": hi}
    if draw(st.booleans()):
        u["earnings"] = draw(_day())
    if draw(st.booleans()):
        u["sector"] = draw(st.sampled_from(["Information Technology", "Energy", ""]))
    if draw(st.booleans()):
        u["skew"] = draw(_floats(0, 5))
    if draw(st.booleans()):
        u["dividend_yield"] = draw(_floats(0, 0.5))
    return u


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    """A scenario document the loader must accept."""
    now = draw(st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31)))
    offset = timezone(timedelta(hours=draw(st.integers(-12, 14))))
    doc: dict[str, Any] = {
        "version": 1, "now": now.replace(tzinfo=offset).isoformat(),
        "account": {"id": draw(st.sampled_from(["DU0000001", "U1", "x"])),
                    "cash": draw(_floats(-1e9, 1e9))},
    }
    symbols = draw(st.lists(st.sampled_from(SYMBOLS), unique=True, max_size=4))
    if bool(symbols) or draw(st.booleans()):
        doc["underlyings"] = {s: draw(underlyings()) for s in symbols}
    if draw(st.booleans()):
        doc["vix"] = draw(_floats(0.01, 200))
    if bool(symbols) and draw(st.booleans()):
        doc["positions"] = [
            {"symbol": draw(st.sampled_from(symbols)), "right": draw(st.sampled_from("PC")),
             "strike": draw(_floats(0.5, 5000)), "expiration": draw(_day()),
             "quantity": draw(st.integers(-1000, 1000).filter(bool)),
             "avg_price": draw(_floats(0, 500)), "opened": draw(_day()),
             "underlying_at_entry": draw(_floats(0.01, 5000)),
             "roll_count": draw(st.integers(0, 5))}
            for _ in range(draw(st.integers(1, 3)))]
    if draw(st.booleans()):
        doc["stock_positions"] = [
            {"symbol": draw(st.sampled_from(SYMBOLS)),
             "shares": draw(st.integers(-10_000, 10_000).filter(bool)),
             "avg_price": draw(_floats(0.01, 5000))}
            for _ in range(draw(st.integers(1, 2)))]
    if draw(st.booleans()):
        doc["equity_history"] = [{"date": draw(_day()),
                                  "net_liquidation": draw(_floats(0.01, 1e9))}
                                 for _ in range(draw(st.integers(1, 3)))]
    if bool(symbols) and draw(st.booleans()):
        quotes = {}
        for _ in range(draw(st.integers(1, 3))):
            key = (f"{draw(st.sampled_from(symbols))} "
                   f"{draw(st.dates(date(2024, 1, 1), date(2029, 12, 31))):%Y%m%d} "
                   f"{draw(st.integers(1, 900)):g} {draw(st.sampled_from('PC'))}")
            bid, ask = sorted([draw(_floats(0, 100)), draw(_floats(0.01, 100))])
            quote: dict[str, Any] = {"bid": bid, "ask": max(ask, 0.01)}
            if draw(st.booleans()):
                quote |= {"delta": draw(_floats(-1, 1)), "iv": draw(_floats(0.01, 5))}
            quotes[key] = quote
        doc["option_quotes"] = quotes
    return doc


# --- damage ------------------------------------------------------------------------------

WRONG = ["abc", "", None, True, [], {}, [1, 2], {"x": 1}, "2026-13-45", "１２"]
NUMBERS = [-1, 0, -1e-9, 1e308, -1e308, 10**30, -(10**30), 5.01, 100, 201,
           math.nan, math.inf, -math.inf, 2**63]
BAD_KEYS = ["AAPL 2026-12-18 200 P", "AAPL 20261218 200 X", "AAPL 20261218 nan P",
            "AAPL 20261218 -5 P", "AAPL 20261218 inf P", "AAPL 20261218 0 P", "AAPL",
            "", "AAPL 20261318 200 P", "ZZZZ 20261218 200 P", "AAPL 20261218 abc P",
            "AAPL  20261218 200 P extra"]


def _paths(node: Any, here: Path_ = ()) -> list[Path_]:
    out: list[Path_] = [here] if here else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*here, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*here, i))
    return out


def _get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def json_path(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@st.composite
def damaged(draw: st.DrawFn) -> tuple[Any, list[Path_]]:
    """A world with one or two flaws, and the JSON paths of the flaws."""
    doc = draw(worlds())
    flaws: list[Path_] = []
    for _ in range(draw(st.integers(1, 2))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        parent, last = _get(doc, path[:-1]), path[-1]
        how = draw(st.sampled_from(["drop", "wrong", "number", "unknown", "crossed", "key",
                                    "text"]))
        if how == "drop":
            del parent[last]  # a list item dropped: the rest move up, still valid
            flaws.append(path if isinstance(last, str) else path[:-1])
        elif how == "wrong":
            # A copy: the shared WRONG values must not be changed by a later damage (a
            # dict of WRONG damaged into containing itself recursed forever).
            parent[last] = copy.deepcopy(draw(st.sampled_from(WRONG)))
            flaws.append(path)
        elif how == "number":
            parent[last] = draw(st.sampled_from(NUMBERS))
            flaws.append(path)
        elif how == "unknown" and (isinstance(_get(doc, path), dict)
                                   or isinstance(parent, dict)):  # a key needs an object
            target = _get(doc, path) if isinstance(_get(doc, path), dict) else parent
            where = path if target is _get(doc, path) else path[:-1]
            name = draw(st.sampled_from(["colour", "Price", "iv ", "_", "versions"]))
            target[name] = copy.deepcopy(draw(st.sampled_from(WRONG + NUMBERS[:3])))
            flaws.append((*where, name))
        elif how == "crossed" and _quotes(doc) and any(
                isinstance(q, dict) for q in doc["option_quotes"].values()):
            key = draw(st.sampled_from(sorted(k for k, q in doc["option_quotes"].items()
                                              if isinstance(q, dict))))
            q = doc["option_quotes"][key]
            q["bid"] = (q["ask"] if isinstance(q.get("ask"), float) else 1.0) + 0.01
            flaws.append(("option_quotes", key))
        elif how == "key" and _quotes(doc):
            old = draw(st.sampled_from(sorted(doc["option_quotes"])))
            new = draw(st.sampled_from(BAD_KEYS))
            doc["option_quotes"][new] = doc["option_quotes"].pop(old)
            flaws.append(("option_quotes", new))
        else:  # text where a number or a date belongs
            parent[last] = draw(st.text(max_size=12))
            flaws.append(path)
    return doc, flaws


def _quotes(doc: dict[str, Any]) -> bool:
    """option_quotes is still a non-empty object (an earlier damage may have replaced
    it with anything)."""
    return isinstance(doc.get("option_quotes"), dict) and bool(doc["option_quotes"])


def check_scenario(s: Scenario) -> None:
    """What a loaded scenario promises the simulator."""
    assert s.now.tzinfo is not None and s.account.id
    numbers = [s.account.cash, *(v for v in [s.vix] if v is not None)]
    for u in s.underlyings.values():
        assert u.price > 0 and 0 < u.iv <= 5
        numbers += [u.price, u.iv, u.skew, u.dividend_yield]
    for p in s.positions:
        assert p.symbol in s.underlyings and p.strike > 0 and p.quantity != 0
        numbers += [p.strike, p.avg_price]
    for key, q in s.option_quotes.items():
        contract = OptionContract.parse_key(key)
        assert contract.symbol in s.underlyings and contract.strike > 0
        assert 0 <= q.bid <= q.ask
        numbers += [contract.strike, q.bid, q.ask]
    assert all(math.isfinite(n) for n in numbers), numbers


def _related(message: str, flaws: list[Path_]) -> bool:
    """The message starts with the path of a flaw or of what contains it (a check on
    the whole object, e.g. a crossed quote), or names a reference the flaw broke."""
    for flaw in flaws:
        for k in range(len(flaw), 0, -1):
            head = json_path(flaw[:k])
            if message.startswith(head) and message[len(head)] in ":.[":
                return True
        if flaw[0] == "underlyings" and message.startswith(("positions[", "option_quotes.")):
            return True  # a position or quote on an underlying that is gone
    return message.startswith("(file)")


@settings(FUZZ, max_examples=budget(60))
@given(worlds())
def test_a_valid_world_loads_whole(doc: dict[str, Any]) -> None:
    s = Scenario.from_data(json.loads(json.dumps(doc)))
    check_scenario(s)
    assert s.account.cash == doc["account"]["cash"]
    assert {k: u.price for k, u in s.underlyings.items()} == {
        k: u["price"] for k, u in doc.get("underlyings", {}).items()}
    assert len(s.positions) == len(doc.get("positions", []))
    assert set(s.option_quotes) == set(doc.get("option_quotes", {}))


@settings(FUZZ, max_examples=budget(250))
@given(damaged())
@example(({"version": 1, "now": "2026-11-24T10:30:00-05:00",
           "account": {"id": "DU1", "cash": math.nan}}, [("account", "cash")]))
@example(({"version": 1, "now": "2026-11-24T10:30:00-05:00", "account": {"id": "D", "cash": 1},
           "underlyings": {"AAPL": {"price": math.inf, "iv": 0.3}}},
          [("underlyings", "AAPL", "price")]))
@example(({"version": 1, "now": "2026-11-24T10:30:00-05:00", "account": {"id": "D", "cash": 1},
           "underlyings": {"AAPL": {"price": 9, "iv": 0.3}},
           "option_quotes": {"AAPL 20261218 nan P": {"bid": 1, "ask": 2}}},
          [("option_quotes", "AAPL 20261218 nan P")]))
@example(({"version": 1, "now": "2026-11-24T10:30:00-05:00", "account": {"id": "D", "cash": 1},
           "underlyings": {"AAPL": {"price": 9, "iv": 0.3}},
           "positions": [{"symbol": "AAPL", "strike": 5, "expiration": "2026-12-18",
                          "quantity": -(10**30), "avg_price": 1}]},
          [("positions", 0, "quantity")]))
def test_damage_is_refused_naming_its_json_path(case: tuple[Any, list[Path_]]) -> None:
    doc, flaws = case
    try:
        s = Scenario.from_data(json.loads(json.dumps(doc)))
    except ScenarioError as exc:
        assert _related(str(exc), flaws), (str(exc), flaws)
        return
    check_scenario(s)  # the damage left a valid world (a dropped optional key ...)


# --- files -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scenarios")


@st.composite
def text_flaws(draw: st.DrawFn, text: str) -> bytes:
    how = draw(st.sampled_from(["cut", "cut", "garbage", "bytes", "bom", "huge int",
                                "deep", "empty", "nan token", "comments"]))
    if how == "cut":
        return text[:draw(st.integers(0, max(len(text) - 1, 0)))].encode()
    if how == "garbage":
        return draw(st.text(max_size=80)).encode("utf-8", "surrogatepass")
    if how == "bytes":
        return draw(st.binary(max_size=80))
    if how == "bom":
        return b"\xef\xbb\xbf" + text.encode()
    if how == "huge int":
        return text.replace('"version": 1', '"version": ' + "9" * 5000, 1).encode()
    if how == "deep":
        return ("[" * 100_000 + "]" * 100_000).encode()
    if how == "empty":
        return b""
    if how == "nan token":
        return text.replace('"cash": ', '"cash": NaN, "x": ', 1).encode()
    return ("// a comment\n" + text).encode()


@settings(FUZZ, max_examples=budget(80))
@given(worlds(), st.data())
@example(json.loads(demo_scenario_path().read_text()), None)
def test_any_file_loads_or_is_refused_by_name(workdir: Path, doc: dict[str, Any],
                                             data: st.DataObject | None) -> None:
    text = json.dumps(doc, indent=1)
    blob = text.encode() if data is None else data.draw(text_flaws(text))
    path = workdir / "world.json"
    path.write_bytes(blob)
    try:
        s = load_scenario(path)
    except ScenarioError as exc:
        message = str(exc)
        assert message.startswith("(file)") or _related(message, [(p,) for p in doc]), message
        return
    check_scenario(s)


@pytest.mark.parametrize("blob", [b"\xff\xfe{}", ("9" * 5000).encode(), b"[" * 100_000,
                                  b'{"version": 1e999}'])
def test_regressions_for_the_loader(workdir: Path, blob: bytes) -> None:
    """Each of these escaped as UnicodeDecodeError, ValueError or RecursionError."""
    path = workdir / "bad.json"
    path.write_bytes(blob)
    with pytest.raises(ScenarioError, match=r"^(\(file\)|version): "):
        load_scenario(path)


def test_a_nul_in_the_path_is_a_named_refusal() -> None:
    with pytest.raises(ScenarioError, match=r"^\(file\): cannot read"):
        load_scenario("world\x00.json")
