"""The `putdesk` command line (Typer). `putdesk` alone opens the console.

Exit codes: 0 ok, 1 failure at run time, 2 bad input (arguments, settings, files).
Every command takes --json. Commands that read the market take --scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from typer._click.exceptions import ClickException  # Typer's own click: no public alias

from core import fmt
from core.fmt import plural

if TYPE_CHECKING:
    from core.config import Settings
    from core.engine import Engine

T = TypeVar("T")


def _flag_takes_no_value() -> None:
    """Typer 0.29's help shows a flag as "--json <bool>" and a count as "-v <int>", as if
    they took a value; they take none, so no type is shown for them (--help included:
    Typer builds that option itself, so no metavar of ours reaches it)."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_putdesk", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag or self.count else shown(self, ctx)

    display_type_rich._putdesk = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flag_takes_no_value()

app = typer.Typer(
    name="putdesk",
    help="PutDesk: operate a naked-put book on Interactive Brokers (or the built-in simulator).",
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Markdown joins a paragraph's lines: docstrings wrapped at 100 columns reflow to the
    # terminal instead of breaking where the source did.
    rich_markup_mode="markdown",
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")


class Invocation:
    """What this command line asks beyond the command's own arguments, set while it is
    parsed (the options' callbacks run before the command): --json makes a failure one
    JSON object too, -v/-vv put the log on stderr, and a command names the loggers whose
    warnings it already shows in its output (they stay in the log file only)."""

    json = False
    verbosity = 0
    reported_logs: tuple[str, ...] = ()

    @classmethod
    def reset(cls) -> None:
        cls.json, cls.verbosity, cls.reported_logs = False, 0, ()


def _json_option(value: bool) -> bool:
    Invocation.json = bool(value)
    return value


def _verbose_option(value: int) -> int:
    Invocation.verbosity = max(Invocation.verbosity, value or 0)
    return value


JsonOpt = Annotated[bool, typer.Option(
    "--json", help="Machine-readable output: one JSON document on stdout, errors too.",
    callback=_json_option)]
VerboseOpt = Annotated[int, typer.Option(
    "--verbose", "-v", count=True, callback=_verbose_option, show_default=False,
    help="Log on stderr: -v info, -vv debug (default: warnings about this command).")]
ScenarioOpt = Annotated[
    Path | None,
    typer.Option("--scenario", help="Simulator scenario file (same as PUTDESK_SIM_SCENARIO).",
                 dir_okay=False),
]
ReadOnlyOpt = Annotated[
    bool,
    typer.Option("--read-only", help="Watch only: no orders, staging, cancels, rolls, closes "
                 "or resume from this process; halting stays allowed (same as "
                 "PUTDESK_READ_ONLY=true)."),
]


def read_only_mode(on: bool) -> None:
    """--read-only is PUTDESK_READ_ONLY=true for this process (it wins over .env)."""
    if on:
        import os

        os.environ["PUTDESK_READ_ONLY"] = "true"


def redact(text: str) -> str:
    from core.redaction import redact as core_redact

    return core_redact(text)


def install_redacting_output() -> None:
    """Everything this process prints from here on (tables, JSON, messages, a traceback)
    goes through core.redaction, like the log (idempotent; typer's test runner puts its
    own streams back after each command)."""
    from core.redaction import RedactingStream

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))


#: The stable codes of --json errors (README, "Errors with --json"), by exit code when a
#: call site names none.
ERROR_CODES = ("bad_input", "bad_setting", "not_found", "not_confirmed", "broker_unavailable",
               "database", "halted", "read_only", "halt_failed", "data_unavailable", "failed",
               "interrupted", "internal")


def fail(message: str, code: int = 2, error: str | None = None) -> NoReturn:
    """Stop the command: the message on stderr, or with --json one JSON object
    {"error": {"code", "message"}} on stdout (stdout then always holds one document);
    exit `code` (2 bad input, 1 failure at run time)."""
    error = error or ("bad_input" if code == 2 else "failed")
    assert error in ERROR_CODES, error
    if Invocation.json:
        typer.echo(redact(json.dumps({"error": {"code": error, "message": message}})))
    else:
        typer.echo(redact(f"putdesk: {message}"), err=True)
    raise typer.Exit(code)


def emit(data: Any, as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        typer.echo(redact(json.dumps(fmt.clean_floats(data), indent=2, default=str)))
    else:
        human()


class SettingsProblem(Exception):
    """A setting that stops start-up, named (exit code 2)."""


def load(stderr_logs: bool = True) -> Settings:
    try:
        settings = read_settings(stderr_logs)
    except SettingsProblem as exc:
        fail(str(exc), error="bad_setting")
    install_redacting_output()
    return settings


def read_settings(stderr_logs: bool = True) -> Settings:
    """The settings, validated, and the log set up; SettingsProblem names what is wrong."""
    from core.config import ConfigError, load_settings
    from core.logs import setup_logging

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise SettingsProblem(str(exc)) from None
    try:
        setup_logging(settings, **_stderr_log() if stderr_logs else {})
    except OSError as exc:  # PUTDESK_LOG_FILE is a directory, unwritable ...
        raise SettingsProblem(f"PUTDESK_LOG_FILE: cannot write the log {exc.filename}: "
                              f"{exc.strerror}") from None
    return settings


def _stderr_log() -> dict[str, Any]:
    """The log on stderr as asked (-v, -vv), else the warnings about this command."""
    from core.logs import CommandStderrFilter, stderr_level

    verbosity = Invocation.verbosity
    return {"stderr_level": stderr_level(verbosity),
            "stderr_filter": None if verbosity else CommandStderrFilter(
                Invocation.reported_logs)}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


#: One-shot commands on the paper gateway connect as the lowest free id of 100..999, so
#: they never take the console's PUTDESK_IBKR_CLIENT_ID (TWS refuses a client id in use),
#: and a command run again after a crash (kill -9) gets its predecessor's id back: at
#: IBKR only the id that placed an order may change it, so the new process can follow or
#: cancel the order the dead one left working.
CLI_CLIENT_IDS = (100, 900)


def build_engine(settings: Settings, scenario: Path | None) -> Engine:

    from core.broker.scenario import ScenarioError
    from core.config import ConfigError
    from core.db.session import DatabaseError
    from core.engine import Engine
    from core.paper.gateway import GatewayError
    from core.paper.state import WorldStateError

    if scenario is not None and not scenario.exists():
        fail(f"--scenario: file not found: {scenario}", error="not_found")
    first, span = CLI_CLIENT_IDS
    try:
        return Engine.build(settings, scenario=scenario, client_id=first,
                            spare_client_ids=span - 1)
    except ScenarioError as exc:
        fail(f"scenario: {exc}")
    except ConfigError as exc:
        fail(str(exc), error="bad_setting")
    except DatabaseError as exc:
        fail(str(exc), code=1, error="database")
    except (GatewayError, WorldStateError) as exc:
        fail(f"paper gateway: {exc}", code=1, error="broker_unavailable")


def _halt_time(settings: Settings) -> Any:
    """When a halt happened, on the process clock (the paper world's time when its gateway
    runs); the wall clock if that cannot be read: the halt itself must land."""
    from core.clock import SystemClock

    try:
        return process_clock(settings).now()
    except Exception:
        return SystemClock().now()


def process_clock(settings: Settings) -> Any:
    """The clock a command stamps and measures with: the paper world's when this data
    directory's gateway runs (one clock: the world's time everywhere), else the wall's."""
    from core.clock import SystemClock
    from core.config import BrokerKind

    if settings.app.broker is BrokerKind.PAPER:
        from core.paper.client import GatewayClock
        from core.paper.gateway import GatewayInfo, paper_home

        home = paper_home(settings)
        info = GatewayInfo.read(home)
        if info is not None:
            return GatewayClock(home, info.anchor)
    return SystemClock()


def kill_switch(settings: Settings) -> Any:
    from core.db.session import Database, DatabaseError, database_url
    from core.risk.kill_switch import KillSwitch

    try:
        db = Database(database_url(settings))
        db.upgrade()
    except DatabaseError as exc:
        fail(str(exc), code=1, error="database")
    switch = KillSwitch(db, process_clock(settings))
    switch.sync()
    return switch


# --- commands -------------------------------------------------------------------


@app.callback()
def main_callback(
    ctx: typer.Context,
    scenario: ScenarioOpt = None,
    read_only: ReadOnlyOpt = False,
) -> None:
    """With no command, open the console."""
    Invocation.reset()  # runs before the command's own options are parsed
    read_only_mode(read_only)
    if ctx.invoked_subcommand is None:
        console(scenario=scenario)


@app.command()
def console(scenario: ScenarioOpt = None, read_only: ReadOnlyOpt = False) -> None:
    """Open the console (the default)."""
    read_only_mode(read_only)
    from console.app import PutDeskApp

    # The settings are read after the first frame (see PutDeskApp); a bad one still
    # ends here with exit code 2 and the variable's name, once the terminal is back.
    app = PutDeskApp(scenario=scenario, settings_loader=lambda: read_settings(stderr_logs=False))
    app.run()
    if app.settings_error:
        fail(app.settings_error, error="bad_setting")
    if app.return_code:
        raise typer.Exit(app.return_code)


@app.command()
def status(json_out: JsonOpt = False, scenario: ScenarioOpt = None,
           verbose: VerboseOpt = 0) -> None:
    """Halt state, broker, account health, market session.

    The halt's reason, the broker connection, the account's figures, the session now."""
    settings = load()
    engine = build_engine(settings, scenario)

    async def gather() -> dict[str, Any]:
        from core.broker.base import BrokerError
        from core.db.session import DatabaseError

        try:
            await asyncio.to_thread(engine.db.upgrade)
            halt = await engine.sync_halt()
        except DatabaseError as exc:  # it names the database and the cause
            fail(str(exc), code=1, error="database")
        except Exception as exc:
            fail(f"database {engine.db.redacted_url}: {exc}", code=1, error="database")
        account = None
        error = ""
        try:
            await engine.broker.connect()
            account = _account_dict(await engine.broker.account_values())
        except BrokerError as exc:
            error = str(exc)
        info = engine.broker.info()
        now = engine.clock.now()
        session = engine.calendar.session_at(now)
        await engine.stop()
        return {
            "halted": halt.halted,
            "halt_reason": halt.reason,
            "halt": halt.as_dict(),
            "broker": {"kind": info.kind, "connected": account is not None,
                       "description": info.description, "account_id": info.account_id,
                       "read_only": info.read_only, "error": error or info.last_error},
            "account": account,
            "session": session.as_dict(),
            "database": engine.db.redacted_url,
            "now": now.isoformat(),
        }

    data = run(gather())

    def human() -> None:
        from rich.console import Console
        from rich.table import Table

        out = Console()
        halt = data["halt"]
        if data["halted"]:
            out.print(f"[bold white on red] TRADING HALTED [/] {data['halt_reason']}")
            out.print(f"  since {_when(halt['since'])} by {halt['by'] or 'unknown'}")
        else:
            out.print("[bold black on green] TRADING ACTIVE [/]")
        b = data["broker"]
        state = "connected" if b["connected"] else f"[bold red]NOT CONNECTED[/] — {b['error']}"
        out.print(f"Broker:  {b['description']} — {state}")
        s = data["session"]
        out.print(f"Market:  {s['session']} ({s['reason']}) at {_when(s['at'])}; "
                  f"next open {_when(s['next_open'])}")
        if data["account"]:
            a = data["account"]
            t = Table(title=f"Account {b['account_id']}", show_header=False, title_justify="left")
            t.add_column(style="dim")
            t.add_column(justify="right")
            for label, key in (("Net liquidation", "net_liquidation"),
                               ("Available funds", "available_funds"),
                               ("Excess liquidity", "excess_liquidity"),
                               ("Initial margin", "init_margin_req"),
                               ("Maintenance margin", "maint_margin_req"),
                               ("Equity with loan", "equity_with_loan"),
                               ("Cash", "total_cash")):
                value = a[key]
                t.add_row(label, fmt.money(value))
            for label, key in (("Excess liq. / NLV", "excess_liquidity_pct"),
                               ("Margin utilisation", "margin_utilization")):
                value = a[key]
                t.add_row(label, "—" if value is None else f"{value:.1%}")
            out.print(t)

    emit(data, json_out, human)


def _when(iso: str | None) -> str:
    """A moment as a trader reads it: "Mon 2026-12-07 09:30 ET" (New York time)."""
    from core.clock import new_york

    if not iso:
        return fmt.DASH
    return new_york(datetime.fromisoformat(iso)).strftime("%a %Y-%m-%d %H:%M ET")


def _account_dict(values: Any) -> dict[str, Any]:
    nlv = values.net_liquidation
    return {
        "net_liquidation": nlv,
        "available_funds": values.available_funds,
        "excess_liquidity": values.excess_liquidity,
        "excess_liquidity_pct": (values.excess_liquidity / nlv
                                 if nlv and values.excess_liquidity is not None else None),
        "init_margin_req": values.init_margin_req,
        "maint_margin_req": values.maint_margin_req,
        "equity_with_loan": values.equity_with_loan,
        "margin_utilization": values.margin_utilization,
        "total_cash": values.total_cash,
    }


def _candidate_dict(c: Any) -> dict[str, Any]:
    return {
        "symbol": c.symbol, "strike": c.strike, "expiration": c.expiration.isoformat(),
        "dte": c.dte, "underlying_price": c.underlying_price, "otm_pct": round(c.otm_pct, 4),
        "bid": c.live_bid if c.live_bid is not None else c.bid,
        "ask": c.live_ask if c.live_ask is not None else c.ask,
        "spread_pct": None if c.spread_pct is None else round(c.spread_pct, 4),
        "raw_iv": c.raw_iv, "iv_rank": None if c.iv_rank is None else round(c.iv_rank, 4),
        "delta": None if c.delta is None else round(c.delta, 4),
        "volume": c.volume, "open_interest": c.open_interest, "sector": c.sector,
        "earnings_date": c.earnings_date.isoformat() if c.earnings_date else None,
        "earnings_known": c.earnings_known,
        # What the trade pays and risks (figures), then the score and its 0..1 parts.
        "premium_per_contract": c.premium_per_contract,
        "margin_per_contract": c.margin_per_contract, "return_on_margin": c.return_on_margin,
        "annualised_return": c.annualised_return, "prob_otm": c.prob_otm,
        "prob_otm_method": "N(d2)", "prob_otm_inputs": c.prob_otm_inputs,
        "score": c.score, "score_parts": c.score_parts,
        "warnings": list(c.warnings), "source_row": c.source_row,
    }


@app.command()
def scan(
    csv_file: Annotated[Path | None, typer.Option(
        "--csv", help="A Barchart options-screener CSV export.", dir_okay=False)] = None,
    api: Annotated[bool, typer.Option("--api", help="Scan with the Barchart API.")] = False,
    json_out: JsonOpt = False, verbose: VerboseOpt = 0,
    scenario: ScenarioOpt = None,
) -> None:
    """Screen a Barchart export: scored candidates, rejections.

    The screening pipeline: accepted candidates with scores and trader's figures, rejected
    ones with the stage and reason."""
    if (csv_file is None) == (not api):
        fail("give exactly one of --csv FILE or --api")
    if csv_file is not None and not csv_file.exists():  # not a regular file: named later
        fail(f"--csv: file not found: {csv_file}", error="not_found")
    # Every screening warning is in the output (a Rejected row, a candidate's warning).
    Invocation.reported_logs = ("putdesk.screening",)
    settings = load()
    engine = build_engine(settings, scenario)

    async def go() -> Any:
        from core.actor import whoami
        from core.broker.base import BrokerError
        from core.db.session import DatabaseError
        from core.screening.barchart_csv import BarchartCsvError

        try:
            await asyncio.to_thread(engine.db.upgrade)
            await engine.broker.connect()
        except DatabaseError as exc:
            await engine.stop()
            fail(str(exc), code=1, error="database")
        except BrokerError as exc:
            await engine.stop()
            fail(f"broker: {exc}", code=1, error="broker_unavailable")
        try:
            pipeline = engine.screening()
            if csv_file is not None:
                scanned = await pipeline.scan_csv(csv_file)
                await engine.record_scan(scanned, whoami("cli"))
                return scanned
            from core.screening.barchart_api import BarchartApiError, scan_api

            try:
                scanned = await pipeline.run_source(await scan_api(settings, pipeline.today()))
                await engine.record_scan(scanned, whoami("cli"))
                return scanned
            except BarchartApiError as exc:
                fail(f"Barchart API: {exc}", code=exc.exit_code,
                     error="bad_input" if exc.exit_code == 2 else "data_unavailable")
        except BarchartCsvError as exc:
            fail(f"--csv {csv_file}: {exc}")
        finally:
            await engine.stop()

    result = run(go())
    data = {
        "source": result.source,
        "snapshot_time": result.snapshot_time.isoformat() if result.snapshot_time else None,
        "warnings": result.warnings,
        "accepted": [_candidate_dict(c) for c in result.accepted],
        "rejected": [r.as_dict() for r in result.rejected],
    }

    def human() -> None:
        from rich.console import Console
        from rich.markup import escape

        from console.cli_tables import Column, fit

        out = Console()
        for warning in result.warnings:
            out.print(f"[bold yellow]WARNING[/] {warning}")
        # Hidden first at a narrow width: the highest number; 0 is never hidden.
        columns = (Column("#"), Column("Symbol", justify="left"), Column("Exp", justify="left"),
                   Column("DTE"), Column("Strike"), Column("OTM%", 5), Column("Bid", 6),
                   Column("$/ct"), Column("ROM", 3), Column("Ann", 2), Column("POTM", 4),
                   Column("Δ"), Column("IVR", 8), Column("Earnings", 7, justify="left"),
                   Column("Score"))
        rows = []
        notes = []
        for n, c in enumerate(result.accepted, start=1):
            rows.append((str(n), c.symbol, c.expiration.isoformat(), str(c.dte),
                         f"{c.strike:g}", fmt.pct(c.otm_pct), fmt.price(c.premium),
                         fmt.money(c.premium_per_contract), fmt.pct(c.return_on_margin),
                         fmt.pct(c.annualised_return, 0), fmt.pct(c.prob_otm, 0),
                         fmt.greek(c.delta), fmt.pct(c.iv_rank, 0),
                         (c.earnings_date.isoformat() if c.earnings_date else
                          "[yellow]unknown[/]" if c.earnings_known is False else "none"),
                         f"{c.score:.3f}"))
            notes += [f"  #{n} {c.symbol}: {w}" for w in c.warnings]
        out.print(fit(out, f"Accepted ({len(result.accepted)})", columns, rows))
        for note in notes:
            out.print(note, style="yellow", markup=False)
        rejected = [(x.symbol, "" if x.strike is None else f"{x.strike:g}",
                     str(x.expiration or ""), x.stage,
                     "" if x.source_row is None else str(x.source_row), escape(x.reason))
                    for x in result.rejected]
        out.print(fit(out, f"Rejected ({len(result.rejected)})",
                      (Column("Symbol", justify="left"), Column("Strike"),
                       Column("Exp", justify="left"), Column("Stage", 2, justify="left"),
                       Column("Line", 3), Column("Reason", 1, justify="left", text=True)),
                      rejected, labels=[" ".join(r[:3]) for r in rejected]))

    emit(data, json_out, human)


def _parse_expiration(text: str) -> Any:
    from datetime import date

    for pattern in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(text, pattern).date()  # noqa: DTZ007 - a date, no time
        except ValueError:
            continue
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"EXPIRATION: {text!r} is not a date (YYYY-MM-DD)")


STATUS_STYLE = {"pass": "bold green", "warn": "bold yellow", "fail": "bold red"}


def print_decision(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape

    from console.cli_tables import Column, fit

    out = Console()
    opp = data["opportunity"]
    head = (f"{opp['symbol']} {opp['expiration']} {opp['strike']:g}P x{data['contracts']} "
            f"at {'—' if opp['premium'] is None else format(opp['premium'], '.2f')}")
    if data["approved"]:
        out.print(f"[bold black on green] APPROVED [/] {head}  {data['summary']}")
    else:
        out.print(f"[bold white on red] REJECTED [/] {head}  {data['summary']}")
    rows = [(str(n), c["name"], f"[{STATUS_STYLE[c['status']]}]{c['status'].upper()}[/]",
             escape(c["reason"])) for n, c in enumerate(data["checks"], start=1)]
    out.print(fit(out, "Checks (in order)",
                  (Column("#"), Column("Check", justify="left"),
                   Column("Status", justify="left"),
                   Column("Reason", 1, justify="left", text=True)), rows,
                  labels=[f"{r[0]} {r[1]}" for r in rows]))
    if data["sizing"]:
        out.print(f"Sizing: {fmt.contracts(data['sizing']['contracts'])} — "
                  f"{data['sizing']['explanation']}", markup=False)
    w = data["whatif"]
    if w:
        def m(v: float | None) -> str:
            return fmt.money(v, cents=True)

        source = "IBKR what-if" if w["source"] == "whatif" else "[yellow]estimate[/]"
        out.print(f"Margin ({source}): impact {m(w['margin_impact'])} (cap "
                  f"{m(w['per_trade_cap'])}), init before {m(w['init_margin_before'])} "
                  f"after {m(w['init_margin_after'])}, maint after {m(w['maint_margin_after'])}, "
                  f"equity w/ loan after {m(w['equity_with_loan_after'])}, commission "
                  f"{m(w['commission'])}")
        if w["fallback_reason"]:
            out.print(f"  [yellow]{w['fallback_reason']}[/]")


#: Sane ranges of the numbers `check` takes (the dearest US underlyings trade in the
#: thousands; one order of more than 10,000 contracts is no naked-put book's).
MAX_STRIKE = 100_000
MAX_CONTRACTS = 10_000


@app.command()
def check(
    symbol: Annotated[str, typer.Argument(metavar="SYMBOL", help="Underlying symbol, e.g. AAPL.")],
    strike: Annotated[float, typer.Argument(metavar="STRIKE", help="Put strike.")],
    expiration: Annotated[str, typer.Argument(metavar="EXPIRATION",
                                              help="Expiration date, YYYY-MM-DD.")],
    premium: Annotated[float | None, typer.Option(
        "--premium", help="Limit per share (default: the live mid).")] = None,
    contracts: Annotated[int | None, typer.Option(
        "--contracts", help="Most contracts you want; sizing may allow fewer.")] = None,
    stage: Annotated[bool, typer.Option(
        "--stage", help="If approved, stage it: sent at the open or by `putdesk execute`.")
    ] = False,
    json_out: JsonOpt = False, verbose: VerboseOpt = 0,
    scenario: ScenarioOpt = None,
) -> None:
    """Size one short put and run every pre-trade check.

    Against the broker's state (WhatIf margin included). Exit 0 when approved, 1 when
    rejected, 2 on bad input."""
    import re

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9.\- ]{0,9}", symbol.strip()):
        fail(f"SYMBOL: {symbol!r} is not a ticker symbol")
    # Bounded, not just finite: 1e308 overflowed the sizing arithmetic.
    if not 0 < strike <= MAX_STRIKE:
        fail(f"STRIKE: {strike:g} must be greater than 0 and at most {MAX_STRIKE:,}")
    if premium is not None and not 0 < premium <= MAX_STRIKE:
        fail(f"--premium: {premium:g} must be greater than 0 and at most {MAX_STRIKE:,}")
    if contracts is not None and contracts < 1:
        fail(f"--contracts: {contracts} must be at least 1")
    if contracts is not None and contracts > MAX_CONTRACTS:
        fail(f"--contracts: {contracts} must be at most {MAX_CONTRACTS:,}")
    exp = _parse_expiration(expiration)
    # The governor's decision and the sizing are the output (its log lines say it again).
    Invocation.reported_logs = ("putdesk.risk",)
    settings = load()
    engine = build_engine(settings, scenario)

    async def go() -> dict[str, Any]:
        from core.actor import whoami
        from core.broker.base import BrokerError
        from core.clock import new_york
        from core.models import Opportunity

        await _opened(engine)
        try:
            today = new_york(engine.clock.now()).date()
            if exp < today:
                fail(f"EXPIRATION: {exp} is in the past (today is {today})")
            if exp > engine.calendar.bounds[1]:
                fail(f"EXPIRATION: {exp} is beyond the market calendar "
                     f"(last session {engine.calendar.bounds[1]})")
            try:
                await engine.broker.connect()
            except BrokerError as exc:
                fail(f"broker: {exc}", code=1, error="broker_unavailable")
            opp = Opportunity(symbol.strip().upper(), exp, strike, premium,
                              requested_contracts=contracts)
            decision = await engine.check(opp, actor=whoami("cli"))
            data = decision.as_dict()
            if stage and decision.approved:
                data["staged"] = _staged_dict(await engine.stage(decision, whoami("cli")))
            return data
        finally:
            await engine.stop()

    data = run(go())

    def human() -> None:
        print_decision(data)
        if "staged" in data:
            typer.echo(f"Staged as {data['staged']['order_ref']} (id {data['staged']['id']}):"
                       "\nsent at the open, or now with `putdesk execute`.")

    emit(data, json_out, human)
    if not data["approved"]:
        raise typer.Exit(1)


def _staged_dict(r: Any) -> dict[str, Any]:
    return {"id": r.id, "order_ref": r.order_ref, "kind": r.kind, "action": r.action,
            "symbol": r.symbol, "strike": r.strike,
            "expiration": r.expiration.isoformat() if r.expiration else None,
            "contracts": r.contracts,
            "limit_price": r.limit_price, "status": r.status, "message": r.message,
            "filled": r.filled, "avg_fill_price": r.avg_fill_price,
            "last_limit": r.last_limit, "limit_deviation": r.limit_deviation,
            "reprices": r.reprices, "commission": r.commission,
            "realized_pnl": r.realized_pnl, "position_id": r.position_id,
            "sender": r.sender, "cancel_requested": r.cancel_requested,
            "created_at": r.created_at.isoformat(), "actor": r.actor}


def _contract_text(r: dict[str, Any]) -> str:
    if r["strike"] is None:
        return f"{r['symbol']} shares"
    return f"{r['symbol']} {r['expiration']} {r['strike']:g}P"


def _orders_table(out: Any, rows: list[dict[str, Any]], title: str) -> Any:
    from rich.markup import escape

    from console.cli_tables import Column, fit

    columns = (Column("Kind", 2, justify="left"), Column("Contract", justify="left"),
               Column("Side", justify="left"), Column("Qty"), Column("Limit"),
               Column("Status", justify="left"), Column("Filled", 3), Column("Avg", 4),
               Column("Reason", 5, justify="left", text=True))
    cells = []
    for r in rows:
        limit = r["last_limit"] if r["last_limit"] is not None else r["limit_price"]
        cells.append((r["kind"], _contract_text(r), r["action"], str(r["contracts"]),
                      "MKT" if r["kind"] == "stock" else fmt.price(limit), r["status"],
                      str(r["filled"] or ""),
                      "" if r["avg_fill_price"] is None else fmt.price(r["avg_fill_price"]),
                      escape(r.get("reason") or r["message"] or "")))
    return fit(out, title, columns, cells,
               labels=[f"{r['order_ref']} {_contract_text(r)}" for r in rows])


KINDS_HELP = "Only these kinds: open, close, roll, stock (repeatable; default all)."


@app.command()
def orders(
    kind: Annotated[list[str] | None, typer.Option("--kind", help=KINDS_HELP)] = None,
    json_out: JsonOpt = False, scenario: ScenarioOpt = None, verbose: VerboseOpt = 0,
) -> None:
    """Every order PutDesk has staged or sent, newest first.

    Opening sells, closes, roll combos and stock sales, with their status and reason."""
    from core.execution.ledger import KINDS

    bad = [k for k in kind or [] if k not in KINDS]
    if bad:
        fail(f"--kind: {', '.join(bad)} is not one of {', '.join(KINDS)}")
    settings = load()
    engine = build_engine(settings, scenario)

    async def go() -> list[dict[str, Any]]:

        await _opened(engine)
        rows = await asyncio.to_thread(engine.staged.list, None, tuple(kind) if kind else None)
        await engine.stop()
        return [_staged_dict(r) for r in sorted(rows, key=lambda r: r.created_at,
                                                reverse=True)]

    data = run(go())

    def human() -> None:
        from rich.console import Console

        out = Console()
        if not data:
            out.print("No orders" + (f" of kind {', '.join(kind)}" if kind else "") + ".")
            return
        out.print(_orders_table(out, data, f"Orders ({len(data)})"))

    emit({"orders": data}, json_out, human)


@app.command()
def cancel(
    order: Annotated[str, typer.Argument(metavar="ID", help="Order id or orderRef.")],
    json_out: JsonOpt = False, scenario: ScenarioOpt = None, verbose: VerboseOpt = 0,
) -> None:
    """Cancel a staged or working order (any process's).

    A staged one at once; a working one by the process that follows it (at IBKR only the
    client that placed an order may cancel it), or here when its sender is gone. Exit 0
    when it is cancelled or the cancel is on its way."""
    settings = load()
    engine = build_engine(settings, scenario)
    engine.identify("cli cancel")

    async def go() -> dict[str, Any]:
        from core.actor import whoami
        from core.broker.base import BrokerError
        from core.execution.staging import StagingError

        await _opened(engine)
        try:
            row = (await asyncio.to_thread(engine.staged.get, order)
                   or await asyncio.to_thread(engine.staged.by_ref, order))
            if row is None:
                fail(f"no order {order} (see `putdesk orders`)", error="not_found")
            if row.status in ("SENDING", "WORKING", "UNKNOWN"):
                # Its sender may be gone: then this process adopts it to cancel it.
                with contextlib.suppress(BrokerError):
                    await engine.broker.connect()
            try:
                await engine.cancel_staged(row.id, whoami("cli cancel"))
            except StagingError as exc:
                fail(str(exc), code=1)
            await engine.adoptions_settled()
            fresh = await asyncio.to_thread(engine.staged.get, row.id) or row
            return {"order": _staged_dict(fresh), "result": engine.state.last_message
                    or fresh.status}
        finally:
            await engine.stop()

    data = run(go())
    emit(data, json_out, lambda: typer.echo(f"{data['order']['order_ref']}: {data['result']}"))


@app.command()
def close(
    position: Annotated[str, typer.Argument(
        metavar="POSITION", help="The position as `putdesk positions` names it, e.g. "
        "'KO 20261218 66 P'.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask first.")] = False,
    json_out: JsonOpt = False, scenario: ScenarioOpt = None, verbose: VerboseOpt = 0,
) -> None:
    """Buy back one short put now (allowed while halted).

    A close only reduces risk, so it goes out while trading is halted. Exit 0 when it is
    bought back."""
    settings = load()
    engine = build_engine(settings, scenario)
    engine.identify("cli close")
    interrupted: list[str] = []

    async def go() -> dict[str, Any]:
        from core.actor import whoami

        await _start_for_orders(engine, interrupted)
        try:
            engine.refuse_if_read_only("closing a position")
            views = await engine.monitor.refresh(notify=False)
            wanted = " ".join(position.upper().split())
            view = next((v for v in views if v.position_id == wanted), None)
            if view is None:
                fail(f"no short put {position!r}; held: "
                     + (", ".join(v.position_id for v in views) or "none"), error="not_found")
            if not yes and not typer.confirm(f"Buy back {view.position_id} "
                                             f"({fmt.contracts(view.contracts)}) now?",
                                             default=False):
                fail("not closed", code=1, error="not_confirmed")
            result = await engine.exits.close(view, "operator close", whoami("cli close"))
            return {"position": view.position_id, "result": result.as_dict(),
                    "reason": result.reason, "interrupted": interrupted[0] if interrupted
                    else None}
        except ReadOnlyError as exc:
            fail(str(exc), code=1, error="read_only")
        finally:
            await engine.stop()

    from core.engine import ReadOnlyError

    data = run(go())
    emit(data, json_out, lambda: typer.echo(
        f"{data['position']}: {data['result']['outcome']} — {data['reason']}"))
    if data["result"]["outcome"] != "FILLED":
        raise typer.Exit(1)


@app.command()
def execute(
    ids: Annotated[list[str] | None, typer.Argument(
        help="Staged order ids or orderRefs (default: every STAGED order).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Every step except sending.")] = False,
    json_out: JsonOpt = False, verbose: VerboseOpt = 0,
    scenario: ScenarioOpt = None,
) -> None:
    """Re-check and send staged orders now, step by step.

    One progress line per step (re-check, sent, repriced, filled or cancelled). Exit 0
    when every order filled, is working or dry-ran; 1 when any was rejected, cancelled
    or left unknown."""
    settings = load()
    engine = build_engine(settings, scenario)
    engine.identify("cli execute")
    interrupted: list[str] = []

    async def go() -> dict[str, Any]:
        await _start_for_orders(engine, interrupted)
        try:
            staged = await asyncio.to_thread(engine.staged.list, ("STAGED",))
            if ids:
                known = {r.id for r in staged} | {r.order_ref for r in staged}
                missing = [i for i in ids if i not in known]
                if missing:
                    fail(f"not a STAGED order: {', '.join(missing)} (see `putdesk orders`)",
                         error="not_found")
            wanted = [r for r in staged if not ids or r.id in ids or r.order_ref in ids]
            with OrderProgress(engine, tuple(r.id for r in wanted)) as progress:
                if wanted:
                    progress.say(f"Re-checking {plural(len(wanted), 'staged order')} with "
                                 "live data, then sending"
                                 + (" (dry run: nothing is sent)" if dry_run
                                    or settings.execution.dry_run else ""))
                results = await engine.execute(list(ids) if ids else None,
                                               dry_run=dry_run or None)
                # Orders a killed PutDesk left working were adopted at the connect:
                # followed to their end before this command exits.
                await engine.adoptions_settled()
                progress.show()
            out = []
            for row, result in results:
                out.append({**_staged_dict(await asyncio.to_thread(engine.staged.get, row.id)
                                           or row), "result": result.as_dict(),
                            "reason": result.reason})
            return {"dry_run": dry_run or settings.execution.dry_run, "orders": out,
                    "interrupted": interrupted[0] if interrupted else None,
                    "halted": engine.kill_switch.state.halted}
        finally:
            await engine.stop()

    data = run(go())
    # Exit 1 below: the result says why in the same place as a failure would.
    unsent = [o for o in data["orders"] if not o["result"]["success"]]
    if data["interrupted"]:
        data["error"] = {"code": "interrupted", "message": f"{data['interrupted']}: working "
                         "orders cancelled"}
    elif unsent:
        data["error"] = {"code": "halted" if data["halted"] else "failed", "message": "; ".join(
            f"{o['order_ref']}: {o['reason']}" for o in unsent)}

    def human() -> None:
        from rich.console import Console

        out = Console()
        if not data["orders"]:
            out.print("No staged orders to send.")
            return
        title = "Dry run" if data["dry_run"] else "Sent"
        out.print(_orders_table(out, data["orders"], f"{title} ({len(data['orders'])})"))

    emit(data, json_out, human)
    if data["interrupted"]:
        typer.echo(f"putdesk: {data['interrupted']}: working orders cancelled", err=True)
        raise typer.Exit(130 if data["interrupted"] == "SIGINT" else 1)
    if any(not o["result"]["success"] for o in data["orders"]):
        raise typer.Exit(1)


class OrderProgress:
    """One line per step of the orders this process sends, as it happens (sent at $x,
    repriced to $y, filled, cancelled, refused ...). Every ledger write publishes an
    engine state with a new orders_version right after it is written, before the next
    write of that order can start; this listener reads this process's rows there and
    then, so no step is skipped. On stderr with --json (stdout stays one JSON document),
    else on stdout."""

    def __init__(self, engine: Any, ids: tuple[str, ...] = ()) -> None:
        import threading

        self.engine = engine
        self.ids = set(ids)  # followed from the start (an execute's staged orders)
        self.shown: dict[str, tuple[str, str, int]] = {}
        self.version = engine.state.orders_version
        self.lock = threading.Lock()  # states are published from worker threads too

    def say(self, text: str) -> None:
        from core.clock import new_york

        stamp = new_york(self.engine.clock.now()).strftime("%H:%M:%S")
        typer.echo(redact(f"{stamp} {text}"), err=Invocation.json)

    def __enter__(self) -> OrderProgress:
        self.engine.add_listener(self._on_state)
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.remove_listener(self._on_state)

    def _on_state(self, state: Any) -> None:
        if state.orders_version != self.version:
            self.version = state.orders_version
            self.show()

    def show(self) -> None:
        """Print what changed in this process's orders since the last look (also called
        at the end: the outcome is shown before the summary). A few small reads: the
        working orders (SENDING/WORKING/UNKNOWN, to find this process's new ones) and
        the rows already followed."""
        from core.execution.ledger import SENT

        engine = self.engine
        mine = engine.ledger.sender  # unique to this process (it carries an instance id)
        with self.lock:
            try:
                self.ids.update(r.id for r in engine.staged.list(SENT) if r.sender == mine)
                rows = [engine.staged.get(i) for i in sorted(self.ids)]
            except Exception:  # the database is down: the order's own path reports it
                logging.getLogger("putdesk.cli").debug("progress: no read", exc_info=True)
                return
            for row in rows:
                if row is None:
                    continue
                now = (row.status, row.message or "", row.filled)
                if self.shown.get(row.id, ("STAGED", "", 0)) == now or row.status == "STAGED":
                    continue
                self.shown[row.id] = now
                contract = _contract_text({"symbol": row.symbol, "strike": row.strike,
                                           "expiration": row.expiration})
                self.say(f"{contract} ({row.kind}) {row.status}: "
                         f"{row.message or ''}".rstrip())


async def _start_for_orders(engine: Any, interrupted: list[str]) -> None:
    """Start an order-sending command's engine: ctrl-c, a closed SSH session or a kill
    cancels the orders it works before it exits (never left working with nobody
    following them; only the console halts the book on a signal), and only the loops its
    orders need run (the halt sync, the ledger heartbeat that keeps its claims, the
    reconnect). Exit 1 unless the broker is connected."""
    import signal

    from core.engine import EngineError, ReadOnlyError

    engine.install_signal_handlers(interrupted.append, halt=False,
                                   signals=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
    try:
        await engine.start(trading_desk=False)
    except ReadOnlyError as exc:
        fail(str(exc), code=1, error="read_only")
    except EngineError as exc:
        fail(str(exc), code=1, error="database")
    if not engine.broker.connected:
        await engine.stop()
        fail(f"broker: not connected ({engine.broker.info().last_error})", code=1,
             error="broker_unavailable")


async def _opened(engine: Any) -> None:
    """Database upgraded, halt flag and seeds loaded; exit 1 with the reason if not."""
    from core.engine import EngineError

    try:
        await engine.open()
    except EngineError as exc:  # the database (Engine.open raises nothing else)
        fail(str(exc), code=1, error="database")


async def _connected(engine: Any) -> None:
    from core.broker.base import BrokerError

    await _opened(engine)
    try:
        await engine.broker.connect()
    except BrokerError as exc:
        await engine.stop()
        fail(f"broker: {exc}", code=1, error="broker_unavailable")


SEVERITY_STYLE = {"WARNING": "bold yellow", "CRITICAL": "bold red", "EMERGENCY": "bold red"}


@app.command()
def positions(json_out: JsonOpt = False, scenario: ScenarioOpt = None,
              verbose: VerboseOpt = 0) -> None:
    """Short puts: delta, P&L, DTE and alerts.

    With the underlying, its drop from entry, and the shares held after an assignment."""
    settings = load()
    engine = build_engine(settings, scenario)

    async def go() -> dict[str, Any]:
        await _connected(engine)
        try:
            views = await engine.monitor.refresh(notify=False)
            stocks = [{"symbol": p.symbol, "shares": p.quantity, "avg_price": p.avg_cost}
                      for p in engine.monitor.stocks]
            return {"positions": [v.as_dict() for v in views], "stock": stocks}
        finally:
            await engine.stop()

    data = run(go())

    def human() -> None:
        from rich.console import Console
        from rich.markup import escape

        from console.cli_tables import Column, fit

        out = Console()
        columns = (Column("Contract", justify="left"), Column("Qty"), Column("Δ"),
                   Column("Underlying", 2), Column("Drop", 3), Column("P&L"), Column("DTE"),
                   Column("Alerts", 4, justify="left", text=True))
        rows = [(f"{p['symbol']} {p['expiration']} {p['strike']:g}P", str(p["quantity"]),
                 fmt.greek(p["delta"]), fmt.price(p["underlying_price"]),
                 fmt.pct(p["drop_pct"]), fmt.pnl(p["pnl"]), str(p["dte"]),
                 [f"[{SEVERITY_STYLE.get(a['severity'], '')}]{a['severity']}[/] "
                  f"{escape(a['message'])}" for a in p["alerts"]])
                for p in data["positions"]]
        out.print(fit(out, f"Positions ({len(data['positions'])})", columns, rows))
        for s in data["stock"]:
            out.print(f"Stock: {s['symbol']} {fmt.shares(s['shares'])} at "
                      f"{fmt.price(s['avg_price'])}")

    emit(data, json_out, human)


def _proposal_dict(p: Any) -> dict[str, Any]:
    return {"id": p.id, "status": p.status, "symbol": p.symbol, "position_id": p.position_id,
            "contracts": p.contracts, "kind": p.kind, "old_strike": p.old_strike,
            "old_expiration": p.old_expiration.isoformat(), "new_strike": p.new_strike,
            "new_expiration": p.new_expiration.isoformat(), "new_dte": p.new_dte,
            "new_delta": p.new_delta, "buyback_cost": p.buyback_cost,
            "new_premium": p.new_premium, "net_credit": p.net_credit,
            "margin_change": p.margin_change, "reason": p.reason, "result": p.result,
            "decided_by": p.decided_by, "created_at": p.created_at.isoformat()}


@app.command()
def rolls(json_out: JsonOpt = False, scenario: ScenarioOpt = None,
          verbose: VerboseOpt = 0) -> None:
    """Roll proposals (pending first) with their figures."""
    settings = load()
    engine = build_engine(settings, scenario)

    async def go() -> list[dict[str, Any]]:

        await _opened(engine)
        rows = await asyncio.to_thread(engine.rolls.find)
        await engine.stop()
        rows.sort(key=lambda r: (r.status != "PENDING", r.created_at))
        return [_proposal_dict(r) for r in rows]

    data = run(go())

    def human() -> None:
        from rich.console import Console
        from rich.markup import escape

        from console.cli_tables import Column, fit

        columns = (Column("Id", justify="left"), Column("Status", justify="left"),
                   Column("From", justify="left"), Column("To", justify="left"),
                   Column("DTE", 2), Column("Credit"), Column("Buyback", 5),
                   Column("New prem", 6), Column("New Δ", 4), Column("Margin Δ", 3),
                   Column("Reason", 7, justify="left", text=True))
        rows = [(p["id"][:8], p["status"],
                 f"{p['symbol']} {p['old_expiration']} {p['old_strike']:g}P",
                 f"{p['new_expiration']} {p['new_strike']:g}P", str(p["new_dte"]),
                 fmt.price(p["net_credit"]), fmt.price(p["buyback_cost"]),
                 fmt.price(p["new_premium"]), fmt.greek(p["new_delta"]),
                 fmt.money(p["margin_change"], signed=True),
                 escape(p["result"] or p["reason"] or "")) for p in data]
        out = Console()
        out.print(fit(out, f"Roll proposals ({len(data)})", columns, rows,
                      labels=[f"{r[0]} {r[2]}" for r in rows]))

    emit({"rolls": data}, json_out, human)


roll_app = typer.Typer(help="Approve or reject a roll proposal.", no_args_is_help=True)
app.add_typer(roll_app, name="roll")


def _decide_roll(proposal_id: str, approve: bool, json_out: bool,
                 scenario: Path | None) -> None:
    settings = load()
    engine = build_engine(settings, scenario)
    engine.identify(f"cli roll {'approve' if approve else 'reject'}")

    async def go() -> dict[str, Any]:
        from core.actor import whoami

        # The roll combo (or the close a rejection leads to) is cancelled on a signal.
        await _start_for_orders(engine, [])
        try:
            rows = await asyncio.to_thread(engine.rolls.find)
            match = [r for r in rows if r.id == proposal_id or r.id.startswith(proposal_id)]
            if len(match) != 1:
                fail(f"ID: {proposal_id!r} matches {len(match)} roll proposals "
                     "(see `putdesk rolls`)", error="not_found" if not match else "bad_input")
            manager = engine.roll_manager
            p = match[0]
            with OrderProgress(engine) as progress:
                progress.say(f"Roll {p.id[:8]} {p.position_id} -> {p.new_expiration} "
                             f"{p.new_strike:g}P: " + (
                                 "approved, sending the combo" if approve else
                                 "rejected; closing the position if its exit rule says so"))
                try:
                    done = await (manager.approve if approve else manager.reject)(
                        p.id, whoami("cli"))
                except ValueError as exc:
                    fail(str(exc))
                progress.show()
            return _proposal_dict(done) | {"halted": engine.kill_switch.state.halted}
        finally:
            await engine.stop()

    data = run(go())
    if approve and data["status"] != "EXECUTED":  # exit 1 below: the result says why
        data["error"] = {"code": "halted" if data["halted"] else "failed",
                         "message": data["result"] or data["reason"]}
    emit(data, json_out,
         lambda: typer.echo(f"{data['status']}: {data['result'] or data['reason']}"))
    if approve and data["status"] != "EXECUTED":
        raise typer.Exit(1)


@roll_app.command("approve")
def roll_approve(proposal_id: Annotated[str, typer.Argument(metavar="ID")],
                 json_out: JsonOpt = False, scenario: ScenarioOpt = None,
                 verbose: VerboseOpt = 0) -> None:
    """Execute a pending roll (one combo order where the broker allows)."""
    _decide_roll(proposal_id, True, json_out, scenario)


@roll_app.command("reject")
def roll_reject(proposal_id: Annotated[str, typer.Argument(metavar="ID")],
                json_out: JsonOpt = False, scenario: ScenarioOpt = None,
                verbose: VerboseOpt = 0) -> None:
    """Reject a pending roll; the exit proceeds as a close if its rule still says so."""
    _decide_roll(proposal_id, False, json_out, scenario)


@app.command("stress-test")
def stress_test(
    shift: Annotated[float | None, typer.Option(
        "--shift", help="Also run a custom scenario: underlying move, e.g. -0.07 for -7%.")
    ] = None,
    iv_shift: Annotated[float, typer.Option(
        "--iv-shift", help="Custom scenario's implied-vol change in points, e.g. 5.")] = 0.0,
    json_out: JsonOpt = False, verbose: VerboseOpt = 0,
    scenario: ScenarioOpt = None,
) -> None:
    """The five stress scenarios (and a custom one).

    Per-position and portfolio impact of each, with the margin-call flag."""
    if shift is not None and not -0.95 <= shift <= 1.0:
        fail(f"--shift: {shift:g} must be a fraction between -0.95 and 1.0 (-0.07 = -7%)")
    if not -50 <= iv_shift <= 200:
        fail(f"--iv-shift: {iv_shift:g} must be vol points between -50 and 200")
    settings = load()
    engine = build_engine(settings, scenario)

    async def go() -> dict[str, Any]:
        from core.analysis.stress import PortfolioStressTest, Scenario
        from core.engine import EngineError

        await _connected(engine)
        try:
            try:
                book = await engine.stress_book()
            except EngineError as exc:
                fail(str(exc), code=1, error="data_unavailable")
            test = PortfolioStressTest(book, settings.stress)
            results = test.run_all_scenarios()
            if shift is not None:
                results.append(test.run_scenario(Scenario(
                    "custom", shift, iv_shift / 100.0,
                    description=f"all underlyings {shift:+.0%}, IV {iv_shift:+g} pts",
                    label=f"Custom {shift:+.0%}, IV {iv_shift:+g} pts")))
            return {"net_liquidation": book.net_liquidation,
                    "maint_margin": book.maint_margin, "vix": book.vix,
                    "risk_free_rate": book.rate,
                    "assumptions": [*book.notes, *test.notes],
                    "scenarios": [r.as_dict() for r in results]}
        finally:
            await engine.stop()

    data = run(go())

    def human() -> None:
        from rich.console import Console
        from rich.markup import escape

        from console.cli_tables import Column, fit

        out = Console()
        out.print(f"Priced from each put's mark, implied vols at a {data['risk_free_rate']:.2%} "
                  "risk-free rate (STRESS_RISK_FREE_RATE)", markup=False)
        for note in data["assumptions"]:
            out.print(f"[bold yellow]ASSUMED[/] {note}")
        for sc in data["scenarios"]:
            p = sc["portfolio"]
            flag = ("[bold white on red] MARGIN CALL [/]" if p["margin_call"]
                    else "[bold black on green] no margin call [/]")
            columns = (Column("Position", justify="left"), Column("Price now", 3),
                       Column("New price", 1), Column("P&L"), Column("New Δ", 2),
                       Column("New margin"))
            rows = [(row["position"], fmt.price(row["price_now"]), fmt.price(row["new_price"]),
                     fmt.pnl(row["pnl"]), fmt.greek(row["new_delta"]),
                     fmt.money(row["new_margin"])) for row in sc["positions"]]
            rows.append(("[bold]Portfolio[/]", "", "", f"[bold]{fmt.pnl(p['pnl'])}[/]", "",
                         f"[bold]{fmt.money(p['margin'])}[/]"))
            # The heading on its own line (a table's title wraps at the table's width).
            out.print(f"{flag} [bold]{escape(sc['label'])}[/] ({sc['name']}) — "
                      f"{escape(sc['description'])}")
            out.print(fit(out, None, columns, rows,
                          caption=f"ExcessLiquidity after {fmt.money(p['excess_liquidity'])}"
                                  f" · NLV after {fmt.money(p['net_liquidation'])}"))
            out.print()

    emit(data, json_out, human)


def _parse_since(text: str, now: datetime) -> Any:
    """An ISO time, or a span back from `now`: 30m, 12h, 7d."""
    import re
    from datetime import UTC, timedelta

    from core.clock import NEW_YORK

    m = re.fullmatch(r"(\d+)([mhd])", text.strip())
    try:
        if m:
            n, unit = int(m.group(1)), m.group(2)
            span = {"m": timedelta(minutes=n), "h": timedelta(hours=n),
                    "d": timedelta(days=n)}[unit]
            return now - span
        moment = datetime.fromisoformat(text)
        # in UTC, as the database compares it: year 1 or 9999 may not fit
        return (moment if moment.tzinfo else moment.replace(tzinfo=NEW_YORK)).astimezone(UTC)
    except OverflowError:
        fail(f"--since: {text!r} reaches outside the years 1 to 9999")
    except ValueError:
        fail(f"--since: {text!r} is neither a time (2026-11-24T09:30) nor a span (30m, 12h, 7d)")


@app.command()
def audit(
    since: Annotated[str | None, typer.Option(
        "--since", help="From this time (ISO; New York if no offset) or span back (12h, 7d).")
    ] = None,
    kind: Annotated[list[str] | None, typer.Option(
        "--kind", help="Only these kinds (halt, resume, risk_decision, order_filled, alert, "
                       "roll_approved, ...). Repeatable.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.",
                                       min=1, max=100_000)] = 200,
    json_out: JsonOpt = False, verbose: VerboseOpt = 0,
) -> None:
    """The audit trail: decisions, orders, fills, alerts, halts.

    Every decision, order, fill, alert, halt and resume, with who."""
    from core.db.repos import AuditRepo
    from core.db.session import Database, DatabaseError, database_url

    settings = load()
    start = _parse_since(since, process_clock(settings).now()) if since else None
    try:
        db = Database(database_url(settings))
        db.upgrade()
        events = AuditRepo(db).list(start, list(kind) if kind else None, limit)
    except DatabaseError as exc:
        fail(str(exc), code=1, error="database")
    data: list[dict[str, Any]] = [
            {"id": e.id, "ts": e.ts.isoformat(), "kind": e.kind, "severity": e.severity,
             "actor": e.actor, "source": e.source, "symbol": e.symbol, "message": e.message,
             "data": json.loads(e.data) if e.data else None} for e in events]

    def human() -> None:
        from rich.console import Console
        from rich.markup import escape

        from console.cli_tables import Column, fit
        from core.clock import new_york

        columns = (Column("Time (ET)", justify="left"), Column("Kind", justify="left"),
                   Column("Sev", 2, justify="left"), Column("Who", 4, justify="left"),
                   Column("Symbol", 3, justify="left"),
                   Column("Message", 1, justify="left", text=True))
        rows = [(new_york(datetime.fromisoformat(e["ts"])).strftime("%m-%d %H:%M:%S"),
                 e["kind"], e["severity"], escape(e["actor"] or ""), e["symbol"] or "",
                 escape(e["message"])) for e in data]
        out = Console()
        out.print(fit(out, f"Audit ({len(data)} events, newest first)", columns, rows,
                      labels=[f"{r[0]} {r[1]}" for r in rows]))

    emit({"events": data}, json_out, human)


@app.command()
def performance(json_out: JsonOpt = False, scenario: ScenarioOpt = None,
                verbose: VerboseOpt = 0) -> None:
    """Closed-trade statistics, P&L by bucket, drawdown.

    Win rate, average and total P&L, P&L by sector and by delta, DTE and IV-rank bucket
    at entry, maximum drawdown and the equity curve."""
    settings = load()
    engine = build_engine(settings, scenario)

    async def go() -> dict[str, Any]:

        await _opened(engine)
        try:
            return (await engine.journal()).as_dict()
        finally:
            await engine.stop()

    data = run(go())

    def human() -> None:
        from rich.console import Console
        from rich.markup import escape

        from console.cli_tables import Column, fit

        out = Console()
        c = data["closed"]

        def pct(v: float | None) -> str:
            return "—" if v is None else f"{v:.0%}"

        def m(v: float | None) -> str:
            return fmt.money(v)

        out.print(f"Closed trades {c['trades']} · win rate {pct(data['win_rate'])} · average "
                  f"{m(data['average_pnl'])} · total {m(data['total_pnl'])} · best "
                  f"{m(data['best'])} · worst {m(data['worst'])} · open {data['open_trades']}"
                  f" · assigned {data['assigned']} · rolled {data['rolled']} · max drawdown "
                  f"{pct(data['max_drawdown'])}")
        for key, title in (("by_sector", "Sector"), ("by_delta", "Delta at entry"),
                           ("by_dte", "DTE at entry"), ("by_iv_rank", "IV rank at entry")):
            rows = [(escape(name), str(b["trades"]), pct(b["win_rate"]), fmt.pnl(b["pnl"]),
                     fmt.pnl(b["average_pnl"])) for name, b in sorted(data[key].items())]
            if not rows:
                continue  # no closed trade yet: no empty tables
            out.print(fit(out, f"P&L by {title.lower()}",
                          (Column(title, justify="left"), Column("Trades"),
                           Column("Win rate"), Column("P&L"), Column("Average")), rows))

    emit(data, json_out, human)


@app.command()
def calendar(
    at: Annotated[str | None, typer.Option(
        "--at", help="ISO time, e.g. 2026-12-25T11:00-05:00 (no offset = New York time).")] = None,
    json_out: JsonOpt = False, verbose: VerboseOpt = 0,
) -> None:
    """Market session at a time, next open and close.

    REGULAR, PRE_MARKET, AFTER_HOURS or CLOSED, with the reason (a holiday ...)."""
    from core.clock import NEW_YORK
    from core.market.calendar import default_calendar

    if at is None:
        moment = process_clock(load()).now()
    else:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            fail(f"--at: not an ISO date/time: {at!r} (e.g. 2026-12-25T11:00-05:00)")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=NEW_YORK)
    try:
        info = default_calendar().session_at(moment)
    except Exception as exc:  # exchange_calendars raises on dates outside its bounds
        fail(f"--at: {at}: {exc}")
    data = info.as_dict()
    emit(data, json_out, lambda: typer.echo(
        f"{_when(data['at'])}: {data['session']} ({data['reason']})\n"
        f"next open:  {_when(data['next_open'])}\nnext close: {_when(data['next_close'])}"))


@app.command("emergency-stop")
def emergency_stop(
    reason: Annotated[str, typer.Argument(help="Why (shown to whoever resumes).")] = "",
    json_out: JsonOpt = False, verbose: VerboseOpt = 0,
) -> None:
    """Halt trading now, in every process on this database.

    Works at any schema revision (no upgrade first); prints HALTED, or NOT HALTED with
    the reason and exits 1."""
    import logging

    from core.actor import whoami
    from core.config import ConfigError, load_settings
    from core.db.session import Database, DatabaseError, database_url, error_text
    from core.logs import OUTCOME, setup_logging
    from core.risk.kill_switch import emergency_halt

    try:
        settings = load_settings()
    except ConfigError as exc:
        fail(f"NOT HALTED: {exc}", error="bad_setting")
    try:
        setup_logging(settings, **_stderr_log())
    except OSError as exc:  # the halt matters more than the log
        typer.echo(redact(f"putdesk: PUTDESK_LOG_FILE: cannot write the log {exc.filename}: "
                          f"{exc.strerror}; halting anyway"), err=True)
    install_redacting_output()
    actor = whoami("cli")
    why = ""
    try:
        db = Database(database_url(settings))
    except DatabaseError as exc:
        why = str(exc)
    else:
        try:
            state, already = emergency_halt(db, reason or "Manual emergency stop (CLI)",
                                            actor, _halt_time(settings))
        except Exception as exc:  # whatever it is, the operator must read that it failed
            why = str(exc) if isinstance(exc, DatabaseError) else (
                f"Database {db.redacted_url}: {error_text(exc)}")
        finally:
            db.dispose()
    if why:
        logging.getLogger("putdesk.cli").critical("NOT HALTED: %s", why, extra=OUTCOME)
        run(_send_notification(settings, "CRITICAL", "halt_failed",
                               f"EMERGENCY STOP FAILED, NOT HALTED: {why}"))
        fail(f"NOT HALTED: {why}", code=1, error="halt_failed")
    if not already:
        from core.risk.kill_switch import announce

        run(_send_notification(settings, announce=lambda n: announce(n, state)))
    data = state.as_dict() | {"already_halted": already}
    emit(data, json_out, lambda: typer.echo(
        f"HALTED{' (already)' if already else ''}: {state.reason} (since {state.since}, "
        f"by {state.by})"))


async def _send_notification(settings: Settings, severity: str = "", kind: str = "",
                             message: str = "", announce: Callable[[Any], None] | None = None
                             ) -> None:
    """Send one notification the way the console does (email/webhook by severity) and
    wait for it, up to the channels' timeout."""
    from core.clock import SystemClock
    from core.notify import TIMEOUT_SECONDS, Notifier

    notifier = Notifier(settings.notify, SystemClock())
    if announce is not None:
        announce(notifier)
    else:
        notifier.notify(severity, kind, message)
    await notifier.drain(within=TIMEOUT_SECONDS + 5)
    await notifier.close()


@app.command("resume-trading")
def resume_trading(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask (for scripts).")] = False,
    json_out: JsonOpt = False, verbose: VerboseOpt = 0,
) -> None:
    """Clear the halt (asks for confirmation)."""
    from core.actor import whoami

    settings = load()
    if settings.app.read_only:
        fail("Read-only (PUTDESK_READ_ONLY / --read-only): resuming trading is disabled here",
             code=1, error="read_only")
    switch = kill_switch(settings)
    state = switch.state
    if not state.halted:
        emit(state.as_dict(), json_out, lambda: typer.echo("Trading is not halted."))
        return
    if not yes:
        if not sys.stdin.isatty():
            fail("refusing to resume without confirmation: run in a terminal or pass --yes",
                 error="not_confirmed")
        typer.echo(f"Trading halted since {state.since} by {state.by}:\n  {state.reason}")
        if not typer.confirm("Resume trading?", default=False):
            fail("not resumed", code=1, error="not_confirmed")
    new = switch.resume(whoami("cli"))
    emit(new.as_dict(), json_out, lambda: typer.echo("Trading resumed."))


@app.command()
def paper(
    port: Annotated[int, typer.Option("--port", help="Listen on this port of 127.0.0.1 "
                                      "(default: any free one, found per data directory).",
                                      min=0, max=65535)] = 0,
    scenario: ScenarioOpt = None,
    speed: Annotated[float, typer.Option("--speed", help="World time runs this many times "
                                         "faster than the wall clock (closed hours are "
                                         "skipped at any speed).")] = 1.0,
    reset: Annotated[bool, typer.Option("--reset", help="Discard this data directory's "
                                        "world and start again from the scenario.")] = False,
    read_only_api: Annotated[bool, typer.Option(
        "--read-only-api", help="As TWS's 'Read-Only API' setting: every order is refused "
                                "with error 321.")] = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Run the paper gateway (a simulated TWS) in the foreground.

    A simulated IBKR TWS on 127.0.0.1, with a status line."""
    from core.broker.scenario import ScenarioError
    from core.paper.clock import MAX_SPEED
    from core.paper.gateway import GatewayError, open_gateway, run_gateway
    from core.paper.state import ScenarioMismatch, WorldStateError

    settings = load()
    if not 0 < speed <= MAX_SPEED:
        fail(f"--speed: must be above 0 and at most {MAX_SPEED:g}, got {speed:g}")
    if scenario is not None and not scenario.exists():
        fail(f"--scenario: file not found: {scenario}", error="not_found")
    try:
        gateway = open_gateway(settings, scenario=scenario, speed=speed, port=port, reset=reset)
        gateway.peer.read_only_api = read_only_api
    except ScenarioError as exc:
        fail(f"scenario: {exc}")
    except ScenarioMismatch as exc:
        fail(str(exc))
    except (GatewayError, WorldStateError) as exc:
        fail(str(exc), code=1, error="broker_unavailable")
    tty = sys.stdout.isatty()
    last: tuple[int, int] | None = None

    def show(status: Any) -> None:
        # On a terminal one line rewritten in place; into a pipe a line whenever the
        # clients or working orders change (not every world second).
        nonlocal last
        if tty:
            typer.echo(f"\r{status.line()}\x1b[K", nl=False)
        elif (status.clients, status.working_orders) != last:
            typer.echo(status.line())
        last = (status.clients, status.working_orders)

    try:
        run(run_gateway(gateway, on_status=show))
    except GatewayError as exc:
        fail(str(exc), code=1, error="broker_unavailable")
    if tty:
        typer.echo("")
    if gateway.stopped_because:
        typer.echo(f"Paper gateway stopped: {gateway.stopped_because}.")
    else:
        typer.echo("Paper gateway stopped; the world is kept for the next start.")


@db_app.command("upgrade")
def db_upgrade(json_out: JsonOpt = False, verbose: VerboseOpt = 0) -> None:
    """Apply Alembic migrations up to the newest revision."""
    from core.db.session import Database, DatabaseError, database_url

    settings = load()
    try:
        db = Database(database_url(settings))
        db.upgrade()
        revision = db.current_revision()
    except DatabaseError as exc:
        fail(str(exc), code=1, error="database")
    data = {"database": db.redacted_url, "revision": revision}
    emit(data, json_out, lambda: typer.echo(f"{db.redacted_url}: at revision {revision}"))


def _asks_json(args: list[str]) -> bool:
    """--json among the options (not after "--"): known even when parsing failed."""
    return "--json" in (args[:args.index("--")] if "--" in args else args)


def main() -> None:
    args = sys.argv[1:]
    as_json = _asks_json(args)
    try:
        if as_json:
            # A usage error (a missing argument, a number out of range) is JSON too: Typer
            # raises it instead of printing it.
            code = app(args, prog_name="putdesk", standalone_mode=False)
            sys.exit(code if isinstance(code, int) else 0)
        app(prog_name="putdesk")  # also when run as `python -m console`
    except ClickException as exc:  # only in --json mode (not standalone)
        Invocation.json = True
        with contextlib.suppress(typer.Exit):
            fail(exc.format_message(), exc.exit_code)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        if as_json:
            typer.echo(json.dumps({"error": {"code": "interrupted", "message": "interrupted"}}))
        sys.exit(130)
    except Exception as exc:
        from sqlalchemy.exc import DBAPIError

        from core.db.session import error_text
        from core.engine import ReadOnlyError

        Invocation.json = as_json
        with contextlib.suppress(typer.Exit):
            if isinstance(exc, ReadOnlyError):  # PUTDESK_READ_ONLY or --read-only
                fail(str(exc), code=1, error="read_only")
            if isinstance(exc, DBAPIError):  # locked or gone after the command had started
                fail(f"database unavailable: {error_text(exc)}. Once it answers, `putdesk "
                     "status` and `putdesk orders` show where things stand", code=1,
                     error="database")
            if as_json:  # a bug: the traceback goes to the log, the JSON says where
                import logging

                logging.getLogger("putdesk.cli").exception("Unexpected error")
                fail(f"unexpected error ({type(exc).__name__}: {exc}); the traceback is in "
                     "the log", code=1, error="internal")
            raise
        sys.exit(1)
