"""Secrets against servers that ECHO what they receive: a real HTTP server on 127.0.0.1
that puts the Barchart key in its error, an asyncio SMTP server that quotes the AUTH
line (or only its base64 payload) in its rejection, and a database URL carrying its
password as `?password=`. Every output of the real `putdesk` process is searched: stdout,
stderr, the log file and the database, for the secrets in every form they travel in
(as is, URL-quoted, base64, the AUTH PLAIN payload)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.http_server import Reply, Request, http_server
from tests.security.test_secrets import Outputs, database_text, dead_port

SMTP_USER = "alice@desk"
SMTP_PW = "SENTINEL-SMTP-PW-echo-3e9d1a77"
BARCHART_KEY = "SENTINEL-BARCHART-KEY-echo-b41f0c2e"
PG_PW = "SENTINEL-PG-PW-echo-0d5c8e13"


def forms(secret: str, user: str = SMTP_USER) -> list[str]:
    """The secret as it can travel: plain, URL-quoted, base64, AUTH PLAIN's payload."""
    return [secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode(),
            base64.b64encode(f"\0{user}\0{secret}".encode()).decode()]


def assert_clean(out: Outputs, secret: str) -> None:
    found = [(where, needle) for where, text in out.items for needle in forms(secret)
             if needle in text or needle in "".join(text.split())]
    assert not found, f"secret leaked: {found}"
    out.assert_clean()  # and the sentinels' words and tails, as test_secrets searches


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console", *args], env=env, text=True,
                          capture_output=True, timeout=90)


def collect(out: Outputs, name: str, result: subprocess.CompletedProcess[str],
            tmp_path: Path, db: bool = True) -> None:
    out.add(f"{name}: stdout", result.stdout)
    out.add(f"{name}: stderr", result.stderr)
    for log in tmp_path.glob("putdesk.log*"):
        out.add(f"{name}: {log.name}", log.read_text())
    if db:
        out.add(f"{name}: database", database_text(f"sqlite:///{tmp_path}/putdesk.db")[0])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return os.environ | {"PUTDESK_DATABASE_URL": f"sqlite:///{tmp_path}/putdesk.db",
                         "PUTDESK_LOG_FILE": str(tmp_path / "putdesk.log"),
                         "PUTDESK_ENV_FILE": os.devnull, "COLUMNS": "400"}


# --- HTTP: Barchart echoes the key --------------------------------------------------


def echo_key_in_status(req: Request) -> Reply:
    return Reply(200, {"status": {"code": 400, "message":
                                  f"Invalid apikey {req.query.get('apikey')}"}})


def echo_key_in_500(req: Request) -> Reply:
    return Reply(500, f"internal error for /?apikey={req.query.get('apikey')}")


@pytest.mark.parametrize("json_out", [False, True])
def test_a_barchart_server_echoing_the_key(env, tmp_path, json_out):
    out = Outputs()
    with http_server({"/status/getOptionsScreener.json": echo_key_in_status,
                      "/s500/getOptionsScreener.json": echo_key_in_500}) as web:
        for base in ("status", "s500"):
            r = run(env | {"BARCHART_API_KEY": BARCHART_KEY,
                           "BARCHART_API_URL": f"{web.url}/{base}"},
                    "scan", "--api", *(["--json"] if json_out else []))
            collect(out, f"scan --api via {base}", r, tmp_path)
            assert r.returncode == 1, r.stderr
            assert "Traceback" not in r.stderr
        echoed = [q for q in web.requests if q.query.get("apikey") == BARCHART_KEY]
    assert len(echoed) == 2  # the key did reach the server, which echoed it
    # stderr, or stdout's JSON error with --json
    status_run = "".join(text for where, text in out.items
                         if where in ("scan --api via status: stderr",
                                      "scan --api via status: stdout"))
    assert "Barchart status 400: Invalid apikey ***" in status_run
    assert_clean(out, BARCHART_KEY)


# --- SMTP: the server quotes the AUTH line ------------------------------------------


class EchoSmtp:
    """A minimal SMTP server (asyncio) that rejects every login and echoes what it got:
    `echo="line"` quotes the whole AUTH line, `echo="payload"` only its base64."""

    def __init__(self, mechanism: str, echo: str) -> None:
        self.mechanism, self.echo = mechanism, echo
        self.auth_lines: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        say("220 echo.test ESMTP")
        while line := (await reader.readline()).decode(errors="replace").rstrip("\r\n"):
            word = line.split(" ", 1)[0].upper()
            if word in ("EHLO", "HELO"):
                say("250-echo.test")
                say(f"250 AUTH {self.mechanism}")
            elif word == "AUTH":
                self.auth_lines.append(line)
                last = line
                if self.mechanism == "LOGIN":
                    say("334 UGFzc3dvcmQ6")  # "Password:"
                    last = (await reader.readline()).decode().rstrip("\r\n")
                    self.auth_lines.append(last)
                payload = last.split()[-1]
                say(f"535 5.7.8 rejected: {last}" if self.echo == "line"
                    else f"535 5.7.8 credentials {payload} not accepted")
            elif word == "QUIT":
                say("221 bye")
                break
            else:
                say("250 OK")
            await writer.drain()
        writer.close()


@contextlib.contextmanager
def smtp_server(server: EchoSmtp) -> Iterator[int]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    listening = asyncio.run_coroutine_threadsafe(
        asyncio.start_server(server.handle, "127.0.0.1", 0), loop).result(10)
    try:
        yield int(listening.sockets[0].getsockname()[1])
    finally:
        listening.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.mark.parametrize(("mechanism", "echo"), [("PLAIN", "line"), ("PLAIN", "payload"),
                                                  ("LOGIN", "line"), ("LOGIN", "payload")])
def test_an_smtp_server_echoing_the_auth_payload(env, tmp_path, mechanism, echo):
    server = EchoSmtp(mechanism, echo)
    with smtp_server(server) as port:
        r = run(env | {"NOTIFY_EMAIL_TO": "ops@desk.test", "SMTP_HOST": "127.0.0.1",
                       "SMTP_PORT": str(port), "SMTP_SECURITY": "none",
                       "SMTP_USER": SMTP_USER, "SMTP_PASSWORD": SMTP_PW},
                "emergency-stop", "echo test")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HALTED: echo test")
    assert server.auth_lines  # the login was tried, and rejected with the echo
    out = Outputs()
    collect(out, f"emergency-stop {mechanism}/{echo}", r, tmp_path)
    log = (tmp_path / "putdesk.log").read_text()
    assert "Email notification failed (127.0.0.1:" in log
    assert "535" in log
    assert_clean(out, SMTP_PW)


# --- the database URL's ?password= --------------------------------------------------


def test_a_query_password_in_the_database_url_is_never_shown(env, tmp_path):
    url = f"postgresql+psycopg://putdesk@127.0.0.1:{dead_port()}/desk?password={PG_PW}"
    out = Outputs()
    for args in (["status", "--json"], ["status"], ["db", "upgrade"], ["audit", "--json"],
                 ["emergency-stop", "x"]):
        r = run(env | {"PUTDESK_DATABASE_URL": url}, *args)
        collect(out, " ".join(args), r, tmp_path, db=False)
        assert r.returncode == 1, (args, r.stderr)
        # on stderr, or in stdout's JSON error with --json
        assert "?password=***" in r.stderr + r.stdout, (args, r.stderr)
    assert_clean(out, PG_PW)


@pytest.mark.postgres
def test_a_query_password_on_a_live_postgres_is_not_printed(env, tmp_path, pg_url):
    from sqlalchemy import create_engine, text

    name = f"echo_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = pg_url.rsplit("/", 1)[0] + f"/{name}?password={PG_PW}"
    out = Outputs()
    for args in (["status", "--json"], ["db", "upgrade"], ["emergency-stop", "x"]):
        r = run(env | {"PUTDESK_DATABASE_URL": url}, *args)
        collect(out, " ".join(args), r, tmp_path, db=False)
        assert r.returncode == 0, (args, r.stderr)
    assert "?password=***" in "".join(text for _where, text in out.items)
    assert_clean(out, PG_PW)


# --- in the engine: status line, audit rows, notifications --------------------------


async def test_an_echoed_secret_in_an_alert_is_redacted_everywhere_it_goes(tmp_path):
    """A message carrying an echoed secret (a server's error text) reaches the status
    line, the audit trail and the webhook redacted: the same path as the log."""
    from core.db.repos import AuditRepo
    from tests.factories import make_settings, sim_engine

    with http_server({"/hook": lambda req: Reply(200, {})}) as hook:
        settings = make_settings(tmp_path, BARCHART_API_KEY=BARCHART_KEY,
                                 NOTIFY_WEBHOOK_URL=f"{hook.url}/hook",
                                 NOTIFY_WEBHOOK_KIND="json")
        engine = sim_engine(settings)
        await engine.open()
        states = []
        engine.add_listener(states.append)
        engine.alert("CRITICAL", f"Barchart said: bad key {BARCHART_KEY}; db "
                     f"postgresql://u:{PG_PW}@db/x and https://h/x?password={PG_PW}",
                     kind="test_echo")
        await engine.notifier.drain(within=10)
        sent = [q.body.decode() for q in hook.requests]
        audit = [e.message for e in AuditRepo(engine.db).list(kinds=["test_echo"])]
        await engine.stop()
    out = Outputs()
    out.add("status line", states[-1].last_message)
    out.add("audit", "\n".join(audit))
    out.add("webhook", "\n".join(sent))
    assert sent and audit
    assert "bad key ***" in states[-1].last_message
    assert "u:***@db" in audit[0] and "?password=***" in audit[0]
    assert_clean(out, BARCHART_KEY)
    assert_clean(out, PG_PW)
