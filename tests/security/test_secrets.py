"""Secrets never reach a log, a screen, an audit row or an exception (issue 9, item 4).

Every secret is configured as a sentinel, a string nothing PutDesk prints could contain by
chance. PutDesk then runs the paths that handle those secrets: the CLI commands (one
failing), an engine flow whose notifications go to a dead port, an HTTP 500 and real
receivers, the earnings provider (FMP) and the Barchart API failing, a PostgreSQL URL
with a password that cannot connect, and the console's screens. Every output is
searched: stdout/stderr, the log file, log records at DEBUG (every logger, httpx's
included), the database (audit rows and every other table), exception messages and
tracebacks (the whole chain), screen text, what the receivers got, and .env.example.

And PutDesk's own new files (database, its WAL/SHM siblings, the log) are user-only.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import traceback
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from core.config import env_example_text, load_settings
from tests.http_server import Reply, http_server

SMTP_PW = "SENTINEL-SMTP-PW-7f3a2c9e"
HOOK_TOKEN = "SENTINEL-HOOK-91c2d04b"
FMP_KEY = "SENTINEL-FMP-KEY-4d6b8a1f"
BARCHART_KEY = "SENTINEL-BARCHART-KEY-e07c3b52"
PG_PW = "SENTINEL-PG-PW-5b8e6d70"
SENTINELS = (SMTP_PW, HOOK_TOKEN, FMP_KEY, BARCHART_KEY, PG_PW)
#: Also searched: the word every sentinel carries, and each one's random tail (a secret
#: cut up, re-encoded or wrapped over two lines still shows one of these).
NEEDLES = (*SENTINELS, "SENTINEL", *(s.rsplit("-", 1)[1] for s in SENTINELS))
SECRET_VARS = ("SMTP_PASSWORD", "NOTIFY_WEBHOOK_URL", "FMP_API_KEY", "BARCHART_API_KEY",
               "PUTDESK_DATABASE_URL")
ROOT = Path(__file__).parents[2]
DEMO_CSV = ROOT / "core" / "data" / "scenarios" / "demo-barchart.csv"


# --- searching ------------------------------------------------------------------------


class Outputs:
    """Everything PutDesk produced in one test, by where it came from."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, where: str, text: str) -> None:
        self.items.append((where, text))

    def exception(self, where: str, exc: BaseException) -> None:
        self.add(where, exception_text(exc))

    def log_records(self, where: str, caplog: pytest.LogCaptureFixture) -> None:
        self.add(f"{where}: caplog text", caplog.text)
        for r in caplog.records:
            parts = [r.name, r.getMessage(), r.exc_text or "", r.stack_info or ""]
            if r.exc_info and r.exc_info[1] is not None:
                parts.append(exception_text(r.exc_info[1]))
            self.add(f"{where}: log record {r.name}", "\n".join(parts))

    def assert_clean(self) -> None:
        found = []
        for where, text in self.items:
            squeezed = "".join(text.split())
            for needle in NEEDLES:
                for hay in (text, squeezed):
                    at = hay.find(needle)
                    if at >= 0:
                        found.append(f"{needle!r} in {where}: "
                                     f"...{hay[max(0, at - 120):at + 60]}...")
                        break
        assert not found, "secret leaked:\n" + "\n".join(found)


def exception_text(exc: BaseException) -> str:
    """The traceback as printed, and every exception in the chain (suppressed ones too)."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        parts += [type(e).__name__, str(e), repr(e), repr(e.args)]
        todo += [e.__cause__, e.__context__]
    return "\n".join(parts)


def database_text(url: str) -> tuple[str, int]:
    """Every row of every table of a SQLite database, and how many audit rows it has."""
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        dump = "\n".join(conn.iterdump())
        audit_rows = conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    return dump, audit_rows


def test_the_search_finds_a_secret_however_it_is_printed() -> None:
    for text in (f"key={FMP_KEY}", f"x {SMTP_PW[:12]}\n    {SMTP_PW[12:]}", "ends -5b8e6d70"):
        out = Outputs()
        out.add("sample", text)
        with pytest.raises(AssertionError, match="secret leaked"):
            out.assert_clean()


# --- the outside world: SMTP and HTTP receivers, dead ports ----------------------------


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


class Inbox:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # the aiosmtpd hook name
        self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"


def _auth(server, session, envelope, mechanism, data):
    # Only user "putdesk" with the sentinel password gets in: "intruder" is refused.
    ok = (isinstance(data, LoginPassword) and data.login == b"putdesk"
          and data.password == SMTP_PW.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = dead_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, auth_require_tls=False,
                            authenticator=_auth)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _rows(n: int) -> list[dict[str, object]]:
    return [{"underlyingSymbol": "KO", "type": "Put", "expirationDate": "2026-12-31",
             "strike": 62 + i, "lastPrice": 70.0, "bid": 0.5, "ask": 0.6, "delta": -0.2,
             "volatility": 0.35, "openInterest": 500, "volume": 10} for i in range(n)]


ROUTES = {
    f"/hooks/{HOOK_TOKEN}": lambda r: Reply(200, {"ok": True}),
    f"/broken/hooks/{HOOK_TOKEN}": lambda r: Reply(500, {"error": "boom"}),
    "/fmp500/stable/earnings": lambda r: Reply(500, {"error": "boom"}),
    "/fmp401/stable/earnings": lambda r: Reply(401, {"Error Message": "Invalid API KEY."}),
    "/fmpjunk/stable/earnings": lambda r: Reply(200, "<html>not json</html>"),
    "/fmpslow/stable/earnings": lambda r: Reply(200, [], delay=1.0),
    "/bc500/getOptionsScreener.json": lambda r: Reply(500, {"error": "boom"}),
    "/bc401/getOptionsScreener.json": lambda r: Reply(401, {"error": "bad key"}),
    "/bcjunk/getOptionsScreener.json": lambda r: Reply(200, "<html>"),
    "/bcok/getOptionsScreener.json": lambda r: Reply(200, {"status": {"code": 200},
                                                           "results": _rows(2)}),
}


def secret_env(tmp_path: Path, *, smtp_port: int, hook: str, fmp: str, barchart: str,
               smtp_user: str = "putdesk", **more: str) -> dict[str, str]:
    return {
        "PUTDESK_DATABASE_URL": f"sqlite:///{tmp_path}/putdesk.db",
        "PUTDESK_LOG_FILE": str(tmp_path / "putdesk.log"),
        "PUTDESK_LOG_LEVEL": "DEBUG",
        "NOTIFY_EMAIL_TO": "ops@example.com", "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port), "SMTP_SECURITY": "none", "SMTP_USER": smtp_user,
        "SMTP_PASSWORD": SMTP_PW, "NOTIFY_WEBHOOK_URL": hook,
        "EARNINGS_PROVIDER": "fmp", "FMP_API_KEY": FMP_KEY, "FMP_API_URL": fmp,
        "EARNINGS_TIMEOUT_SECONDS": "2",
        "BARCHART_API_KEY": BARCHART_KEY, "BARCHART_API_URL": barchart,
        "NOTIFY_EMERGENCY_REPEAT_MINUTES": "0.002", "NOTIFY_EMERGENCY_MAX_REPEATS": "1",
        **more,
    }


def small_csv(tmp_path: Path) -> Path:
    """The demo export cut to two symbols (each scanned symbol costs an FMP lookup)."""
    lines = DEMO_CSV.read_text().splitlines()
    path = tmp_path / "scan.csv"
    path.write_text("\n".join([lines[0], *(x for x in lines if x.startswith(("KO,", "AAPL,"))),
                               lines[-1]]) + "\n")
    return path


def pg_url(password: str = PG_PW, port: int | str | None = None) -> str:
    return f"postgresql+psycopg://putdesk:{password}@127.0.0.1:{port or dead_port()}/putdesk"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """setup_logging() (the CLI runs in this process) changes global logging: undo it."""
    root = logging.getLogger()
    names = ("alembic", "httpx", "httpcore")
    saved = root.level, {n: logging.getLogger(n).level for n in names}
    yield
    for handler in list(root.handlers):
        if getattr(handler, "_putdesk", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(saved[0])
    for name, level in saved[1].items():
        logging.getLogger(name).setLevel(level)


# --- .env.example ---------------------------------------------------------------------


def test_env_example_holds_no_secret_values() -> None:
    out = Outputs()
    for where, text in ((".env.example", (ROOT / ".env.example").read_text()),
                        ("python -m core.config", env_example_text())):
        values = dict(line.split("=", 1) for line in text.splitlines()
                      if line and not line.startswith("#"))
        for name in SECRET_VARS:
            assert values[name] == "", f"{name} has a value in {where}"
        out.add(where, text)
    out.assert_clean()


# --- the command line -----------------------------------------------------------------


def test_cli_commands_never_print_or_log_a_secret(tmp_path, caplog, restore_logging):
    """Every command in this process (the log's stderr echo included), one also as a
    real process; secrets from a .env file like an operator's."""
    from typer.testing import CliRunner

    from console.cli import app

    # A crash prints a plain traceback: Typer's pretty one would show local variables.
    assert not app.pretty_exceptions_enable
    caplog.set_level(logging.DEBUG)
    out = Outputs()
    with http_server(ROUTES) as web:
        env_file = tmp_path / ".env"
        env_file.write_text(f"SMTP_PASSWORD={SMTP_PW}\nFMP_API_KEY={FMP_KEY}\n"
                            f"BARCHART_API_KEY={BARCHART_KEY}\n"
                            f"NOTIFY_WEBHOOK_URL={web.url}/broken/hooks/{HOOK_TOKEN}\n")
        env = secret_env(tmp_path, smtp_port=dead_port(), hook="", fmp=f"{web.url}/fmp500",
                         barchart=f"{web.url}/bc500", COLUMNS="400")
        for name in ("SMTP_PASSWORD", "FMP_API_KEY", "BARCHART_API_KEY", "NOTIFY_WEBHOOK_URL"):
            del env[name]
        env["PUTDESK_ENV_FILE"] = str(env_file)

        # A real process too (its own stdout, stderr and log), running meanwhile.
        proc_dir = tmp_path / "proc"
        proc_env = os.environ | secret_env(
            proc_dir, smtp_port=dead_port(), hook=f"{web.url}/broken/hooks/{HOOK_TOKEN}",
            fmp=f"http://127.0.0.1:{dead_port()}", barchart=f"{web.url}/bc401",
            MAX_MARGIN_PER_TRADE_PCT="0.001", COLUMNS="400")
        procs = {
            "process: check AMZN (rejected, notifications)": subprocess.Popen(
                [sys.executable, "-m", "console", "check", "AMZN", "195", "2026-12-31"],
                env=proc_env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE),
        }

        runner = CliRunner()
        pg = {"PUTDESK_DATABASE_URL": pg_url()}
        runs: list[tuple[list[str], dict[str, str], int]] = [
            (["status"], {}, 0),
            (["status", "--json"], {}, 0),
            (["scan", "--csv", str(small_csv(tmp_path))], {}, 0),
            (["scan", "--api"], {}, 1),
            (["scan", "--api", "--json"], {"BARCHART_API_URL": f"http://127.0.0.1:{dead_port()}"},
             1),
            (["check", "BA", "190", "2026-12-18", "--stage"], {}, 0),
            (["check", "AMZN", "195", "2026-12-31"], {"MAX_MARGIN_PER_TRADE_PCT": "0.001"}, 1),
            (["orders"], {}, 0),
            (["orders", "--json"], {}, 0),
            (["positions"], {}, 0),
            (["rolls"], {}, 0),
            (["stress-test"], {}, 0),
            (["performance"], {}, 0),
            (["emergency-stop", "stepping away"], {}, 0),
            (["resume-trading", "--yes"], {}, 0),
            (["audit"], {}, 0),
            (["audit", "--json"], {}, 0),
            # Failing ones: a database that cannot be reached, a bad setting.
            (["status"], pg, 1),
            (["status", "--json"], pg, 1),
            (["audit"], pg, 1),
            (["db", "upgrade"], pg, 1),
            (["status"], {"PUTDESK_DATABASE_URL": pg_url(port="notaport")}, 1),
            (["status"], {"SMTP_PORT": "not-a-port"}, 2),
        ]
        for args, extra, code in runs:
            result = runner.invoke(app, args, env=env | extra)
            where = f"putdesk {' '.join(args)} {sorted(extra)}"
            out.add(f"{where}: stdout", result.stdout)
            out.add(f"{where}: stderr", result.stderr)
            if result.exc_info is not None and not isinstance(result.exception, SystemExit):
                out.exception(f"{where}: exception", result.exc_info[1])
            assert result.exit_code == code, (where, result.stdout, result.stderr)
        for where, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=60)
            out.add(f"{where}: stdout", stdout)
            out.add(f"{where}: stderr", stderr)
            assert proc.returncode == 1, (where, stdout, stderr)
        posted = [r for r in web.requests if r.path.endswith(HOOK_TOKEN)]
    out.log_records("CLI", caplog)
    for log_file in (*tmp_path.glob("putdesk.log*"), *proc_dir.glob("putdesk.log*")):
        out.add(f"log file {log_file}", log_file.read_text())
    dump, audit_rows = database_text(env["PUTDESK_DATABASE_URL"])
    out.add("database", dump)
    out.add("process database", database_text(proc_env["PUTDESK_DATABASE_URL"])[0])
    out.assert_clean()
    # The paths above did run: notifications were sent (and failed), errors were logged.
    assert len(posted) >= 2 and audit_rows >= 5
    log_text = (tmp_path / "putdesk.log").read_text()
    assert "Webhook notification (json) failed: HTTP 500" in log_text
    assert "Email notification failed" in log_text
    assert "earnings data unavailable" in log_text and "FMP answered HTTP 500" in log_text
    assert "putdesk:***@127.0.0.1" in "\n".join(text for where, text in out.items
                                             if "PUTDESK_DATABASE_URL" in where)


# --- the engine: notifications, earnings, Barchart, PostgreSQL -------------------------


async def _engine_flow(settings, out: Outputs, name: str) -> None:
    from core.models import Opportunity
    from tests.factories import sim_engine

    engine = sim_engine(settings)
    try:
        await engine.open()
        await engine.broker.connect()
        decision = await engine.check(Opportunity("BA", date(2026, 12, 18), 190.0, None))
        assert not decision.approved  # margin limit: a CRITICAL notification
        await engine.check(Opportunity("KO", date(2026, 12, 31), 68.0, None))
        engine.halt("weekly loss limit")
        engine.alert("EMERGENCY", "Post-trade margin danger (test)", "post_trade_margin")
        await engine.notifier.drain(10)
        out.add(f"{name}: engine state", repr(engine.state))
        out.add(f"{name}: notifications", repr(engine.notifier.sent))
    finally:
        await engine.stop()
    url = settings.app.database_url.get_secret_value()
    dump, audit_rows = database_text(url)
    out.add(f"{name}: database", dump)
    assert audit_rows >= 4


async def test_notifications_earnings_and_barchart_failures_keep_secrets(tmp_path, caplog,
                                                                         smtp):
    from core.market.earnings import EarningsUnavailable, FmpEarnings
    from core.screening.barchart_api import BarchartApiError, fetch_results, scan_api

    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore"):  # as chatty as they can be
        caplog.set_level(logging.DEBUG, logger=name)
    inbox, smtp_port = smtp
    out = Outputs()
    dead = f"http://127.0.0.1:{dead_port()}"
    with http_server(ROUTES) as web:
        flows = {
            "dead ports": dict(smtp_port=dead_port(), hook=f"{dead}/hooks/{HOOK_TOKEN}",
                               fmp=dead, barchart=dead),
            "HTTP 500, SMTP login refused": dict(
                smtp_port=smtp_port, smtp_user="intruder",
                hook=f"{web.url}/broken/hooks/{HOOK_TOKEN}", fmp=f"{web.url}/fmp500",
                barchart=f"{web.url}/bc500"),
            "real receivers": dict(smtp_port=smtp_port, hook=f"{web.url}/hooks/{HOOK_TOKEN}",
                                   fmp=f"{web.url}/fmp401", barchart=f"{web.url}/bcok"),
        }
        for name, where in flows.items():
            work = tmp_path / name.split()[0]
            work.mkdir()
            env = secret_env(work, MAX_MARGIN_PER_TRADE_PCT="0.001", **where)
            await _engine_flow(load_settings(env), out, name)

        # The earnings provider failing every way it can.
        for base, timeout in ((f"{web.url}/fmp500", 2.0), (f"{web.url}/fmp401", 2.0),
                              (f"{web.url}/fmpjunk", 2.0), (f"{web.url}/fmpslow", 0.3),
                              (dead, 2.0)):
            with pytest.raises(EarningsUnavailable) as raised:
                await FmpEarnings(FMP_KEY, base, timeout).next_earnings("KO", date(2026, 11, 24))
            out.exception(f"FMP {base.rsplit('/', 1)[-1]}", raised.value)

        # The Barchart API failing, and working.
        for base in ("bc500", "bc401", "bcjunk"):
            settings = load_settings(secret_env(tmp_path, smtp_port=1, hook="", fmp=dead,
                                                barchart=f"{web.url}/{base}"))
            with pytest.raises(BarchartApiError) as failed:
                await fetch_results(settings)
            out.exception(f"Barchart {base}", failed.value)
        settings = load_settings(secret_env(tmp_path, smtp_port=1, hook="", fmp=dead,
                                            barchart=dead))
        with pytest.raises(BarchartApiError) as failed:
            await fetch_results(settings)
        out.exception("Barchart dead port", failed.value)
        settings = load_settings(secret_env(tmp_path, smtp_port=1, hook="", fmp=dead,
                                            barchart=f"{web.url}/bcok"))
        scanned = await scan_api(settings, date(2026, 11, 24))
        out.add("Barchart scan", repr(scanned))
        requests = list(web.requests)

    # What the receivers got is output too.
    for message in inbox.messages:
        out.add("email received", message)
    for request in requests:
        out.add(f"HTTP body to {request.path[:8]}", request.body.decode("utf-8", "replace"))
    out.log_records("engine", caplog)
    out.assert_clean()

    # The paths did run.
    assert len(inbox.messages) >= 3  # the real receiver got the CRITICAL ones
    assert any(r.path == f"/hooks/{HOOK_TOKEN}" for r in requests)
    assert any(r.query.get("apikey") == BARCHART_KEY for r in requests)
    assert any(r.headers.get("apikey") == FMP_KEY for r in requests)
    text = caplog.text
    assert "Webhook notification (json) failed: HTTP 500" in text
    assert "Webhook notification (json) failed: ConnectError" in text
    assert "Email notification failed" in text and "earnings data unavailable" in text
    assert "Authentication credentials invalid" in text  # the refused SMTP login
    assert any(r.name == "httpx" for r in caplog.records)  # httpx did log its requests


async def test_postgresql_password_stays_out_of_errors(tmp_path, caplog):
    from core.db.session import Database, DatabaseError
    from core.engine import Engine, EngineError

    caplog.set_level(logging.DEBUG)
    out = Outputs()
    for url in (pg_url(), pg_url(port="notaport"), pg_url() + "?sslmode=bogus",
                pg_url().replace("psycopg", "nosuchdriver"), pg_url(PG_PW + "%40x")):
        try:
            db = Database(url)
            out.add(f"redacted URL of {url[:20]}", db.redacted_url)
            with pytest.raises(DatabaseError) as failed:
                db.upgrade()
            out.exception("upgrade", failed.value)
            with pytest.raises(DatabaseError) as failed:
                db.current_revision()
            out.exception("current_revision", failed.value)
        except DatabaseError as exc:
            out.exception("Database()", exc)
    settings = load_settings({"PUTDESK_DATABASE_URL": pg_url(),
                              "PUTDESK_LOG_FILE": str(tmp_path / "putdesk.log")})
    out.add("settings repr", repr(settings) + str(settings.model_dump()))
    engine = Engine.build(settings)
    with pytest.raises(EngineError) as broken:
        await engine.open()
    await engine.stop()
    out.exception("Engine.open", broken.value)
    out.log_records("postgres", caplog)
    out.assert_clean()
    assert "putdesk:***@127.0.0.1" in str(broken.value)


# --- the console ---------------------------------------------------------------------


def screen_text(app) -> str:
    """What the terminal shows (the composited screen, as text), and the toasts."""
    from rich.console import Console

    console = Console(width=app.size.width, height=app.size.height, file=io.StringIO(),
                      force_terminal=True, color_system="truecolor", record=True,
                      legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True))
    notes = [f"{n.title} {n.message}" for n in getattr(app, "_notifications", [])]
    return "\n".join([console.export_text(), *notes])


async def test_console_screens_show_no_secret(tmp_path, caplog):
    from console.app import PutDeskApp
    from tests.factories import sim_engine, wait_engine_started

    caplog.set_level(logging.DEBUG)
    out = Outputs()
    dead = f"http://127.0.0.1:{dead_port()}"
    with http_server(ROUTES) as web:
        settings = load_settings(secret_env(
            tmp_path, smtp_port=dead_port(), hook=f"{web.url}/broken/hooks/{HOOK_TOKEN}",
            fmp=dead, barchart=f"{web.url}/bc500"))
        app = PutDeskApp(settings, engine_factory=lambda: sim_engine(settings),
                         install_signal_handlers=False, actor=lambda via: f"{via} tester")
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_engine_started(pilot)
            await pilot.press("ctrl+k")  # a halt: CRITICAL, to the webhook that fails
            await pilot.pause()
            for key in ("f1", "f2", "f3", "f4", "f6", "f7", "f8", "f9", "f10"):
                await pilot.press(key)
                await app.workers.wait_for_complete()
                await pilot.pause()
                out.add(f"screen {key}", screen_text(app))
                if key == "f2":
                    await pilot.click("#scan-api")  # Barchart answers 500
                    await app.workers.wait_for_complete()
                    await pilot.pause()
                    scanned = screen_text(app)
                    out.add("screen f2 after an API scan", scanned)
                    assert "Barchart answered HTTP 500" in scanned  # the failure is shown
            await pilot.press("ctrl+r")
            await pilot.pause()
            out.add("resume confirmation", screen_text(app))
            await pilot.press("y")
            await pilot.pause()
            assert app.engine is not None
            await app.engine.notifier.drain(5)
            out.add("last screen", screen_text(app))
        assert any(r.path.endswith(HOOK_TOKEN) for r in web.requests)

    # A console whose database (PostgreSQL, with a password) cannot be reached.
    broken = load_settings({"PUTDESK_DATABASE_URL": pg_url(),
                            "PUTDESK_LOG_FILE": str(tmp_path / "broken.log")})
    app = PutDeskApp(broken, install_signal_handlers=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_engine_started(pilot)
        await pilot.pause()
        assert app.engine_failure
        out.add("engine failure", app.engine_failure)
        out.add("screen with the engine failure", screen_text(app))
    out.log_records("console", caplog)
    out.add("database", database_text(f"sqlite:///{tmp_path}/putdesk.db")[0])
    out.assert_clean()


# --- last line of defence --------------------------------------------------------------


def test_the_log_filter_redacts_messages_and_whole_tracebacks(tmp_path, restore_logging):
    from core.logs import setup_logging

    settings = load_settings(secret_env(tmp_path, smtp_port=1, fmp="http://x", barchart="http://x",
                                        hook=f"https://hooks.example.com/services/{HOOK_TOKEN}",
                                        PUTDESK_DATABASE_URL=pg_url()))
    setup_logging(settings)
    log = logging.getLogger("putdesk.test")
    try:
        try:
            raise ValueError(f"inner {FMP_KEY} {BARCHART_KEY}")
        except ValueError as inner:
            raise RuntimeError("outer, clean") from inner
    except RuntimeError:
        log.exception("failed with %s and %s", SMTP_PW, PG_PW)
    log.warning("posting to /services/%s", HOOK_TOKEN)
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = (tmp_path / "putdesk.log").read_text()
    assert "ValueError: inner *** ***" in text and "failed with *** and ***" in text
    out = Outputs()
    out.add("log file", text)
    out.assert_clean()


def test_http_client_logs_carry_no_url_path_or_query() -> None:
    from core.logs import redact_urls

    text = (f'HTTP Request: POST https://hooks.slack.com/services/{HOOK_TOKEN} "HTTP/1.1 200"'
            f" GET http://u:{PG_PW}@127.0.0.1:8080/x?apikey={BARCHART_KEY} and http://host/")
    assert redact_urls(text) == ('HTTP Request: POST https://hooks.slack.com/... "HTTP/1.1 200"'
                                 " GET http://127.0.0.1:8080/... and http://host/")


# --- file permissions ---------------------------------------------------------------------


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: whatever PutDesk creates user-only, it did on purpose."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_database_its_siblings_and_the_log_are_user_only(tmp_path, open_umask,
                                                             restore_logging):
    from sqlalchemy import text

    from core.db.session import Database
    from core.logs import setup_logging

    db_dir, log_dir = tmp_path / "data" / "db", tmp_path / "logs"
    db = Database(f"sqlite:///{db_dir}/putdesk.db")
    db.upgrade()
    with db.engine.connect() as conn:  # open: the WAL and its index exist now
        conn.execute(text("CREATE TABLE t (x int)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
        conn.commit()
        files = sorted(db_dir.iterdir())
        assert {p.name for p in files} >= {"putdesk.db", "putdesk.db-wal", "putdesk.db-shm"}
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    db.dispose()
    assert mode(db_dir) == 0o700

    settings = load_settings({"PUTDESK_LOG_FILE": str(log_dir / "putdesk.log")})
    setup_logging(settings)
    logging.getLogger("putdesk.test").warning("hello")
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_putdesk", False))
    assert isinstance(handler, logging.handlers.RotatingFileHandler)
    handler.doRollover()
    logging.getLogger("putdesk.test").warning("after the rollover")
    assert mode(log_dir) == 0o700
    assert {p.name: mode(p) for p in log_dir.iterdir()} == {"putdesk.log": 0o600,
                                                           "putdesk.log.1": 0o600}


def test_default_locations_are_user_only(tmp_path, open_umask, restore_logging):
    from core.db.session import Database, default_sqlite_url
    from core.logs import setup_logging

    url = default_sqlite_url()  # under XDG_DATA_HOME, a fresh directory per test
    Database(url).upgrade()
    db_file = Path(url.removeprefix("sqlite:///"))
    log_file = setup_logging(load_settings())
    logging.getLogger("putdesk.test").warning("hello")
    assert log_file.parent == db_file.parent
    assert mode(db_file.parent) == 0o700
    assert mode(db_file) == 0o600 and mode(log_file) == 0o600


def test_files_the_user_made_keep_their_mode(tmp_path, restore_logging):
    from core.db.session import Database
    from core.logs import setup_logging

    db_file, log_file = tmp_path / "mine.db", tmp_path / "mine.log"
    db_file.touch()
    log_file.touch()
    os.chmod(db_file, 0o640)
    os.chmod(log_file, 0o644)
    os.chmod(tmp_path, 0o750)
    Database(f"sqlite:///{db_file}").upgrade()
    setup_logging(load_settings({"PUTDESK_LOG_FILE": str(log_file)}))
    logging.getLogger("putdesk.test").warning("hello")
    assert mode(db_file) == 0o640 and mode(log_file) == 0o644 and mode(tmp_path) == 0o750
