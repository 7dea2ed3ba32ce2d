"""The `putdesk` command line: arbitrary arguments for every command (random options,
bad numbers, dates and ids, unknown flags), odd settings in the environment, and
generated scenario files, against a temporary database and the simulator. Every run
ends with exit code 0, 1 or 2 and a message; never a Python traceback.

In-process through typer's CliRunner (a process per example would cost ~2 s);
tests/cli covers the real processes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from console.cli import app
from core.config import all_settings_defaults
from tests.fuzz import FUZZ, budget
from tests.fuzz.test_scenario_fuzz import damaged, worlds

DEMO_CSV = Path(__file__).parents[1] / "data" / "barchart-main-view.csv"


@dataclass
class Desk:
    """A temporary operator machine: database, log, scenario and CSV files."""

    root: Path
    template: Path  # an upgraded empty database, copied for a fresh start
    files: dict[str, Path]

    def env(self, db: Path | None = None) -> dict[str, str]:
        return {"PUTDESK_DATABASE_URL": f"sqlite:///{db or self.root / 'putdesk.db'}",
                "PUTDESK_LOG_FILE": str(self.root / "putdesk.log"),
                "PUTDESK_ENV_FILE": os.devnull}  # no developer .env (module fixture too)

    def fresh_db(self, name: str) -> Path:
        db = self.root / name
        shutil.copy(self.template, db)
        return db


def _world(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": 1, "now": "2026-11-24T10:30:00-05:00",
                           "account": {"id": "DU1", "cash": 100_000.0},
                           "underlyings": {"KO": {"price": 70.0, "iv": 0.3}}}
    doc.update(changes)
    return doc


POSITION = {"symbol": "KO", "strike": 60.0, "expiration": "2026-12-18", "quantity": -1,
            "avg_price": 1.0}


@pytest.fixture(autouse=True, scope="module")
def _in_a_scratch_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A relative path in a fuzzed setting (PUTDESK_LOG_FILE=0) is created here, not in
    the repository (two such logs were once committed by mistake)."""
    with contextlib.chdir(tmp_path_factory.mktemp("cwd")):
        yield


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Desk:
    root = tmp_path_factory.mktemp("desk")
    files = {"missing": root / "nope.json", "dir": root, "csv": DEMO_CSV,
             "csv-broken": root / "broken.csv", "csv-binary": root / "binary.csv"}
    texts: dict[str, Any] = {
        "not-json": "{", "binary": b"\xff\xfe\x00", "empty": "",
        "version-2": _world(version=2),
        "late": _world(now="2100-01-04T10:00:00-05:00"),  # beyond the market calendar
        "early": _world(now="0001-01-02T10:00:00+14:00"),
        "far-expiry": _world(positions=[POSITION | {"expiration": "2100-01-15"}]),
        "huge-quantity": _world(positions=[POSITION | {"quantity": -(10**30)}]),
        "minimal": _world(underlyings={}),
        "one-put": _world(positions=[POSITION]),
    }
    for name, content in texts.items():
        path = root / f"{name}.json"
        if isinstance(content, dict):
            path.write_text(json.dumps(content))
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        files[name] = path
    files["csv-broken"].write_text("Symbol,Price~,Exp Date,Strike,Type,Bid\nKO,70,x,60,Put,1\n")
    files["csv-binary"].write_bytes(b"\xff\xfe\x00\x01")
    desk = Desk(root, root / "template.db", files)
    with _clean_process():
        result = CliRunner().invoke(app, ["db", "upgrade"], env=desk.env(desk.template))
    assert result.exit_code == 0, result.output
    shutil.copy(desk.template, root / "putdesk.db")
    return desk


class _clean_process:
    """What a run leaves in this process (os.environ through --read-only, logging
    handlers bound to the runner's closed streams) is put back afterwards."""

    def __enter__(self) -> None:
        self.environ = dict(os.environ)
        self.handlers = list(logging.getLogger().handlers)
        self.level = logging.getLogger().level

    def __exit__(self, *exc: object) -> None:
        os.environ.clear()
        os.environ.update(self.environ)
        root = logging.getLogger()
        for handler in list(root.handlers):
            if handler not in self.handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(self.level)


def run_cli(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `putdesk ARGS`; fail the test on a traceback or an unexpected exit code."""
    with _clean_process():
        result = CliRunner().invoke(app, args, env=env)
    output = result.output  # stdout and stderr as the terminal shows them
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(result.exception))
        raise AssertionError(f"putdesk {args!r} raised:\n{trace}")
    assert "Traceback" not in output, f"putdesk {args!r} printed a traceback:\n{output}"
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, output[-2000:])
    if result.exit_code:
        assert output.strip(), f"putdesk {args!r} exited {result.exit_code} silently"
    return result.exit_code, output


# --- arguments ---------------------------------------------------------------------------

ODD = ["", " ", "-", "--", "-1", "0", "nan", "inf", "-inf", "1e999", "1e-300", "1e300",
       "99999999999999999999999", "abc", "1,5", "0x1f", "１", "☃", "\t", "'", '"', "%s",
       "{}", "--json", "-h"]
odd_numbers = st.one_of(st.sampled_from(ODD), st.floats().map(str),
                        st.integers(-(10**30), 10**30).map(str))
DATES = ["2026-12-18", "2026-12-31", "2026-11-24", "20261218", "2026-13-01", "2026-02-29",
         "2024-02-29", "1900-01-01", "0001-01-01", "9999-12-31", "2100-01-15", "2029-12-31",
         "2030-01-18", "yesterday", "2026-12-18T10:00", "2026-11-24T09:45-05:00",
         "2026-11-24T09:45+14:00", "0001-01-01T00:00+14:00", "9999-12-31T23:59", "12/18/2026"]
odd_dates = st.one_of(st.sampled_from(DATES + ODD), st.dates().map(str),
                      st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()))
good_dates = st.dates(date(2026, 11, 20), date(2027, 6, 30)).map(str)
SPANS = ["999999999d", "99999999d", "9999999999999999m", "-1d", "1w", "d", "1.5h"]
odd_symbols = st.one_of(st.sampled_from(["ZZZZ", "BRK.B", "aapl", " KO ", "1AB", "A" * 11, "K O",
                                         *ODD]), st.text(max_size=12))
ids = st.one_of(st.sampled_from(["x", "0", "putdesk-", "%", "a" * 200, *ODD]),
                st.text(max_size=16))
text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"),
               max_size=40)
FLAGS = ["--bogus", "-x", "--json=1", "--scenario", "--help", "--version", "--read-only",
         "--limit", "--yes", "--stage", "--dry-run"]

#: one part of a command line: (what the command takes, what it must refuse or survive)
Part = tuple[st.SearchStrategy[list[str]], st.SearchStrategy[list[str]]]
NOTHING: st.SearchStrategy[list[str]] = st.just([])


def one(good: list[str], bad: st.SearchStrategy[str]) -> Part:
    return st.sampled_from(good).map(lambda v: [v]), bad.map(lambda v: [v])


def opt(flag: str, good: st.SearchStrategy[str], bad: st.SearchStrategy[str]) -> Part:
    """An option, absent or given; its flaw is a bad value or no value at all."""
    return (st.one_of(NOTHING, good.map(lambda v: [flag, v])),
            st.one_of(bad.map(lambda v: [flag, v]), st.just([flag])))


def switch(*flags: str) -> Part:
    return st.sampled_from([[], *([f] for f in flags)]), st.sampled_from([[f"{flags[0]}=1"]])


def _commands(desk: Desk) -> dict[str, list[Part]]:
    """Each command's parts: a run takes the good side of each part but for a few flaws."""
    odd_files = st.sampled_from(["missing", "dir", "not-json", "binary", "empty", "version-2",
                                 "late", "early", "far-expiry", "huge-quantity", "csv"])
    scen: Part = (st.one_of(NOTHING, st.sampled_from(["minimal", "one-put"]).map(
                      lambda n: ["--scenario", str(desk.files[n])])),
                  odd_files.map(lambda n: ["--scenario", str(desk.files[n])]))
    json_opt = switch("--json")
    csv_files = st.sampled_from(["csv-broken", "csv-binary", "missing", "dir", "not-json"])
    return {
        "status": [json_opt, scen],
        "scan": [(st.sampled_from([["--csv", str(desk.files["csv"])], ["--api"]]),
                  st.one_of(csv_files.map(lambda n: ["--csv", str(desk.files[n])]),
                            st.sampled_from([[], ["--csv", str(DEMO_CSV), "--api"]]))),
                 json_opt, scen],
        "check": [one(["KO", "AAPL", "MSFT", "SPY", "INTC", "AMD"], odd_symbols),
                  one(["60", "150", "400", "25.5"], odd_numbers),
                  (good_dates.map(lambda d: [d]), odd_dates.map(lambda d: [d])),
                  opt("--premium", st.sampled_from(["0.5", "1.25", "3"]), odd_numbers),
                  opt("--contracts", st.sampled_from(["1", "2", "5"]), odd_numbers),
                  switch("--stage"), json_opt, scen],
        "orders": [(st.sampled_from([[], ["--kind", "close"], ["--kind", "open", "--kind",
                                                               "roll"]]),
                    ids.map(lambda k: ["--kind", k])), json_opt, scen],
        "cancel": [(st.sampled_from([["putdesk-0123456789abcdef"], ["0" * 32]]),
                    st.one_of(NOTHING, st.lists(ids, min_size=2, max_size=3))), json_opt,
                   scen],
        "close": [(st.sampled_from([["KO 20261218 66 P"], ["ko  20261218 66 p"]]),
                   st.one_of(NOTHING, ids.map(lambda i: [i]))), switch("--yes"), json_opt,
                  scen],
        "execute": [(NOTHING, st.lists(ids, min_size=1, max_size=3)), switch("--dry-run"),
                    json_opt, scen],
        "positions": [json_opt, scen],
        "rolls": [json_opt, scen],
        "roll": [(st.sampled_from([["approve"], ["reject"]]),
                  st.sampled_from([[], ["bogus"], ["approve", "reject"]])),
                 (ids.map(lambda i: [i]), st.one_of(NOTHING, st.lists(ids, min_size=2,
                                                                      max_size=3))),
                 json_opt, scen],
        "stress-test": [opt("--shift", st.sampled_from(["-0.07", "-0.95", "1", "0.2"]),
                            odd_numbers),
                        opt("--iv-shift", st.sampled_from(["5", "-50", "200", "0"]),
                            odd_numbers),
                        json_opt, scen],
        "audit": [opt("--since", st.one_of(st.sampled_from(["1h", "30m", "7d", "0m"]),
                                           good_dates),
                      st.one_of(st.sampled_from(SPANS), odd_dates)),
                  (st.sampled_from([[], ["--kind", "halt"], ["--kind", "alert", "--kind",
                                                             "resume"]]),
                   ids.map(lambda k: ["--kind", k])),
                  opt("--limit", st.sampled_from(["1", "50", "100000"]), odd_numbers),
                  json_opt],
        "performance": [json_opt, scen],
        "calendar": [opt("--at", good_dates, odd_dates), json_opt],
        "emergency-stop": [(st.one_of(NOTHING, st.just(["VIX spike"])),
                            text.map(lambda t: [t])), json_opt],
        "resume-trading": [switch("--yes"), json_opt],
        "db": [(st.just(["upgrade"]), st.sampled_from([[], ["downgrade"], ["upgrade", "x"]])),
               json_opt],
    }


@st.composite
def command_lines(draw: st.DrawFn, desk: Desk, command: str) -> list[str]:
    """`command` with its parts, up to two of them flawed, and maybe a stray token."""
    parts = _commands(desk)[command]
    n_flaws = min(draw(st.sampled_from([0, 0, 0, 1, 2])), len(parts))
    flawed = set(draw(st.permutations(range(len(parts))))[:n_flaws])
    args = [command]
    for i, (good, bad) in enumerate(parts):
        args += draw(bad if i in flawed else good)
    if draw(st.integers(0, 5)) == 0:  # a stray token somewhere after the command name
        token = draw(st.one_of(st.sampled_from(FLAGS), st.sampled_from(ODD), text))
        args.insert(draw(st.integers(1, len(args))), token)
    return args


# --- properties ----------------------------------------------------------------------------


COMMANDS = ["status", "scan", "check", "orders", "cancel", "close", "execute", "positions",
            "rolls", "roll",
            "stress-test", "audit", "performance", "calendar", "emergency-stop",
            "resume-trading", "db"]  # all but `console` (the TUI)


def test_every_command_is_fuzzed() -> None:
    import typer.main

    group = typer.main.get_group(app)
    # Not fuzzed: the long-running ones, the console (Pilot tests) and the paper gateway
    # (tests/paper): each runs until a signal.
    assert set(group.commands) - {"console", "paper"} == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
@settings(FUZZ, max_examples=budget(14))
@given(data=st.data())
def test_any_arguments_end_with_a_message_never_a_traceback(desk: Desk, command: str,
                                                            data: st.DataObject) -> None:
    args = data.draw(command_lines(desk, command), label="argv")
    run_cli(args, desk.env())


@pytest.mark.parametrize("args", [
    ["check", "KO", "inf", "2026-12-18"],  # math domain error in the simulator's skew
    ["check", "KO", "60", "2100-01-15"],  # beyond the market calendar
    ["audit", "--since", "99999999d"],  # OverflowError subtracting the span
    ["audit", "--since", "9999999999999999m"],
    ["audit", "--since", "9999-12-31T23:59"],  # OverflowError in the database query
    ["audit", "--since", "0001-01-01T00:00+14:00"],
    ["positions", "--scenario", "{binary}"],  # UnicodeDecodeError reading the scenario
    ["positions", "--scenario", "{huge-quantity}"],  # int too large for SQLite
    ["positions", "--scenario", "{far-expiry}"],  # DateOutOfBounds pricing the option
    ["status", "--scenario", "{late}"],  # DateOutOfBounds for the session
    ["status", "--scenario", "{early}"],
])
def test_regressions(desk: Desk, args: list[str]) -> None:
    args = [a.format(**{k: str(v) for k, v in desk.files.items()}) for a in args]
    code, output = run_cli(args, desk.env())
    assert code == 2, output
    assert output.count("putdesk: ") == 1 and ("--" in output or ":" in output), output


def test_an_unusable_log_file_is_named(desk: Desk) -> None:
    code, output = run_cli(["status"], desk.env() | {"PUTDESK_LOG_FILE": ""})
    assert code == 2 and "PUTDESK_LOG_FILE" in output, output
    # a halt matters more than the log: it lands, and the log's problem is named
    code, output = run_cli(["emergency-stop", "x"], desk.env(desk.fresh_db("nolog.db"))
                           | {"PUTDESK_LOG_FILE": ""})
    assert code == 0 and "PUTDESK_LOG_FILE" in output and "HALTED: x" in output, output


#: settings that would reach the network or another server: not fuzzed here
OFFLINE = {n for _g, n, _d, _doc in all_settings_defaults()
           if n.startswith(("SMTP_", "NOTIFY_", "FMP_", "PUTDESK_IBKR_", "BARCHART_API"))
           or n in ("PUTDESK_BROKER", "PUTDESK_DATABASE_URL", "EARNINGS_PROVIDER")}
SETTINGS = sorted({n for _g, n, _d, _doc in all_settings_defaults()} - OFFLINE)
env_values = st.one_of(st.sampled_from(["", "0", "-1", "1e999", "nan", "abc", "true", "/",
                                        ".", "/nonexistent/x", "99999999999", "0.000001"]),
                       st.text(st.characters(codec="utf-8",
                                             exclude_characters="\x00"), max_size=12))


@settings(FUZZ, max_examples=budget(25))
@given(st.sampled_from(["status", "check", "emergency-stop", "audit", "positions",
                        "stress-test"]),
       st.dictionaries(st.sampled_from(SETTINGS), env_values, min_size=1, max_size=3))
@example("emergency-stop", {"PUTDESK_LOG_FILE": ""})  # IsADirectoryError opening the log
def test_any_settings_end_with_a_message(desk: Desk, command: str,
                                         overrides: dict[str, str]) -> None:
    args = {"check": ["check", "KO", "60", "2026-12-18"]}.get(command, [command])
    run_cli(args, desk.env() | overrides)


@settings(FUZZ, max_examples=budget(25))
@given(st.one_of(worlds(), worlds(), damaged().map(lambda case: case[0])),
       st.sampled_from(["status", "positions", "stress-test", "check", "performance",
                        "orders"]))
def test_any_scenario_file_ends_with_a_message(desk: Desk, doc: Any, command: str) -> None:
    """Each example on a fresh database: a world's trades are seeded into an empty one."""
    path = desk.root / "generated.json"
    path.write_text(json.dumps(doc))
    unds = doc.get("underlyings") if isinstance(doc, dict) else None
    symbol = next(iter(unds), "KO") if isinstance(unds, dict) else "KO"
    args = {"check": ["check", str(symbol), "60", "2026-12-18"]}.get(command, [command])
    run_cli([*args, "--scenario", str(path)], desk.env(desk.fresh_db("generated.db")))


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    with _clean_process():
        yield
