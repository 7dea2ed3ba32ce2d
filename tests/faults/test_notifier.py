"""The notifier down or slow, seen from the engine: a dead port, HTTP 500, a webhook that
hangs, an SMTP server that is not there. The engine's halt path (which notifies) returns
at once and the halt is persisted whatever the channels do; the engine keeps working
while a send hangs; each failure is logged by channel, without the URL or password;
stop() is bounded even with a send in flight.

Named outcome: the notification is lost, the engine is not affected — "Webhook
notification (json) failed: HTTP 500" / "... failed: ConnectError" / "... failed:
ReadTimeout", "Email notification failed (127.0.0.1:<port>): ...".

Also covered elsewhere (not repeated here), on the Notifier alone:
tests/core/test_notify.py::test_dead_smtp_port_and_webhook_500_fail_gracefully and
::test_a_hanging_webhook_never_blocks_the_caller.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import date

import pytest
from pytest import LogCaptureFixture as Caplog
from pytest import MonkeyPatch

from core.engine import Engine
from core.models import Opportunity
from tests.faults.conftest import Desk, dead_port, messages
from tests.http_server import Reply, Request, http_server


def email_env(port: int) -> dict[str, str]:
    """SMTP to 127.0.0.1:`port` with a login (as tests/core/test_notify.py's)."""
    return {"NOTIFY_EMAIL_TO": "ops@example.com", "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port), "SMTP_SECURITY": "none", "SMTP_USER": "putdesk",
            "SMTP_PASSWORD": "s3cret-pw"}


CASES: dict[str, tuple[Reply | None, str]] = {
    "dead-port": (None, "Webhook notification (json) failed: ConnectError"),
    "http-500": (Reply(500, {"error": "boom"}), "Webhook notification (json) failed: HTTP 500"),
    "hangs": (Reply(200, delay=3.0), "Webhook notification (json) failed: ReadTimeout"),
}


@contextlib.contextmanager
def webhook(reply: Reply | None) -> Iterator[tuple[str, list[Request]]]:
    """A webhook URL answering `reply`; None: a port where nothing listens any more."""
    with http_server({"/hook": lambda r: reply} if reply else {}) as server:
        if reply is not None:
            yield f"{server.url}/hook", server.requests
            return
        url = f"{server.url}/hook"
    yield url, []


@pytest.mark.parametrize("case", list(CASES))
async def test_notifier_down_or_slow_never_holds_up_the_engine(
        desk: Desk, caplog: Caplog, monkeypatch: MonkeyPatch, case: str) -> None:
    monkeypatch.setattr("core.notify.TIMEOUT_SECONDS", 0.5)
    reply, failure = CASES[case]
    with webhook(reply) as (url, requests):
        engine = await desk(**email_env(dead_port()), NOTIFY_WEBHOOK_URL=url)
        await _exercise(engine, caplog, failure)
        assert len(requests) == (0 if reply is None else 1)


async def _exercise(engine: Engine, caplog: Caplog, failure: str) -> None:
    ko = Opportunity("KO", date(2026, 12, 31), 68.0, None)
    await engine.check(ko)  # warm (the first check of a process loads its models)
    start = time.perf_counter()
    engine.halt("weekly loss limit")  # CRITICAL: email + webhook
    assert time.perf_counter() - start < 0.2  # returned at once
    assert engine.kill_switch.state.halted and engine.kill_switch.state.persisted
    # While the sends are in flight the engine goes on working.
    start = time.perf_counter()
    decision = await engine.check(ko)
    assert time.perf_counter() - start < 0.5
    assert decision.rejected_by is not None and decision.rejected_by.name == "kill_switch"
    await engine.notifier.drain(5)
    log = messages(caplog)
    assert failure in log
    assert any(m.startswith("Email notification failed (127.0.0.1:") for m in log)
    assert not any("s3cret-pw" in m or "/hook" in m for m in log)
    [halt] = engine.audit.list(kinds=["halt"])
    assert halt.message == "Trading halted: weekly loss limit"


async def test_stop_is_bounded_with_a_send_hanging(desk: Desk, monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setattr("core.notify.TIMEOUT_SECONDS", 30.0)
    with http_server({"/hook": lambda r: Reply(200, delay=4.0)}) as hook:
        engine = await desk(NOTIFY_WEBHOOK_URL=f"{hook.url}/hook")
        engine.alert("CRITICAL", "Margin limit rejection: test", "margin_rejection")
        start = time.perf_counter()
        await engine.stop()  # waits at most 2 s for sends in flight, then cancels them
        assert time.perf_counter() - start < 3.0
