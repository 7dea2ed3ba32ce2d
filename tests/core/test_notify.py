"""Notifier (spec 8.3) against a real SMTP server (aiosmtpd) and a real HTTP server on
127.0.0.1: routing by severity, payloads, and graceful failure when a channel is down,
returns 500 or hangs."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from core.clock import ManualClock
from core.config import load_settings
from core.notify import Notifier
from tests.factories import T0
from tests.http_server import Reply, http_server


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):  # the aiosmtpd hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.content.decode("utf-8", "replace")))
        return "250 OK"


def _auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.password == b"s3cret-pw"
    return AuthResult(success=ok)


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = dead_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, auth_require_tls=False,
                            authenticator=_auth)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def notifier(**env: str) -> Notifier:
    return Notifier(load_settings(env).notify, ManualClock(T0))


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def email_env(port: int) -> dict[str, str]:
    return {"NOTIFY_EMAIL_TO": "ops@example.com, desk@example.com", "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port), "SMTP_SECURITY": "none", "SMTP_USER": "putdesk",
            "SMTP_PASSWORD": "s3cret-pw"}


async def test_critical_goes_to_email_and_webhook_with_event_symbol_details_time(smtp):
    inbox, port = smtp
    with http_server({"/hook": lambda r: Reply(200, {"ok": True})}) as hook:
        n = notifier(**email_env(port), NOTIFY_WEBHOOK_URL=f"{hook.url}/hook")
        n.notify("CRITICAL", "assignment", "POSSIBLE ASSIGNMENT DETECTED: KO — 100 shares "
                 "found in account", symbol="KO", data={"shares": 100})
        await n.drain(5)
        [(_sender, rcpts, content)] = inbox.messages
        assert rcpts == ["ops@example.com", "desk@example.com"]
        assert "POSSIBLE ASSIGNMENT DETECTED: KO" in content and "Event: assignment" in content
        assert "Symbol: KO" in content and "Time: 2026-11-24 10:30:00 EST" in content
        [request] = hook.requests
        body = request.json()
        assert request.method == "POST"
        assert body["event"] == "assignment" and body["symbol"] == "KO"
        assert body["details"] == {"shares": 100} and body["timestamp"].startswith("2026-11-24")


async def test_warning_is_email_only_info_is_log_only(smtp):
    inbox, port = smtp
    with http_server({"/hook": lambda r: Reply(200)}) as hook:
        n = notifier(**email_env(port), NOTIFY_WEBHOOK_URL=f"{hook.url}/hook")
        n.notify("WARNING", "alert", "Delta elevated: KO delta=-0.35")
        n.notify("INFO", "order", "Filled")
        await n.drain(5)
        assert len(inbox.messages) == 1 and hook.requests == []


@pytest.mark.parametrize(("kind", "key"), [("slack", "text"), ("discord", "content")])
async def test_slack_and_discord_payloads(kind, key):
    with http_server({"/hook": lambda r: Reply(204)}) as hook:
        n = notifier(NOTIFY_WEBHOOK_URL=f"{hook.url}/hook", NOTIFY_WEBHOOK_KIND=kind)
        n.notify("CRITICAL", "halt", "TRADING HALTED: weekly loss")
        await n.drain(5)
        assert "TRADING HALTED: weekly loss" in hook.requests[0].json()[key]


async def test_dead_smtp_port_and_webhook_500_fail_gracefully(caplog):
    with http_server({"/hook": lambda r: Reply(500, {"error": "boom"})}) as hook:
        n = notifier(**email_env(dead_port()), NOTIFY_WEBHOOK_URL=f"{hook.url}/hook")
        with caplog.at_level(logging.ERROR):
            n.notify("CRITICAL", "halt", "TRADING HALTED: test")
            await n.drain(15)
    assert "Email notification failed" in caplog.text
    assert "Webhook notification (json) failed: HTTP 500" in caplog.text
    assert "s3cret-pw" not in caplog.text and "/hook" not in caplog.text


async def test_a_hanging_webhook_never_blocks_the_caller(caplog, monkeypatch):
    monkeypatch.setattr("core.notify.TIMEOUT_SECONDS", 0.5)
    with http_server({"/hook": lambda r: Reply(200, delay=3)}) as hook:
        n = notifier(NOTIFY_WEBHOOK_URL=f"{hook.url}/hook")
        start = time.perf_counter()
        n.notify("CRITICAL", "halt", "TRADING HALTED: test")
        assert time.perf_counter() - start < 0.05  # returned at once
        ticks = 0
        for _ in range(5):  # the event loop keeps running meanwhile
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 5
        with caplog.at_level(logging.ERROR):
            await n.drain(5)
    assert "Webhook notification (json) failed: ReadTimeout" in caplog.text


async def test_emergency_repeats_until_acknowledged(monkeypatch):
    with http_server({"/hook": lambda r: Reply(200)}) as hook:
        n = notifier(NOTIFY_WEBHOOK_URL=f"{hook.url}/hook",
                     NOTIFY_EMERGENCY_REPEAT_MINUTES="0.002", NOTIFY_EMERGENCY_MAX_REPEATS="50")
        note = n.notify("EMERGENCY", "post_trade_margin", "Post-trade margin danger")
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(hook.requests) >= 3:
                break
        assert len(hook.requests) >= 3
        assert n.acknowledge(note.id) == 1
        await asyncio.sleep(0.3)
        seen = len(hook.requests)
        await asyncio.sleep(0.4)
        assert len(hook.requests) == seen
        await n.close()


async def test_the_engine_notifies_halts_margin_rejections_and_assignments(tmp_path):
    from tests.core.monitoring.test_monitoring import position
    from tests.core.risk.worlds import world, write
    from tests.factories import make_settings, sim_engine

    with http_server({"/hook": lambda r: Reply(200)}) as hook:
        settings = make_settings(tmp_path, NOTIFY_WEBHOOK_URL=f"{hook.url}/hook",
                                 MAX_MARGIN_PER_TRADE_PCT="0.001")
        data = world(positions=[position("KO", 66)])
        engine = sim_engine(settings, write(tmp_path, data))
        await engine.open()
        await engine.broker.connect()
        from datetime import date

        from core.broker.base import OptionContract
        from core.models import Opportunity
        await engine.check(Opportunity("KO", date(2026, 12, 31), 68.0, None))
        engine.broker.assign_early(OptionContract("KO", date(2026, 12, 18), 66.0), 1)
        await engine.assignments.check_for_assignments()
        engine.halt("weekly loss limit")
        await engine.notifier.drain(5)
        events = [r.json()["event"] for r in hook.requests]
        await engine.stop()
    assert {"margin_rejection", "assignment", "halt"} <= set(events)
