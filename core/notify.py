"""Notifier (spec 8.3): the log always; email and webhooks by severity.

INFO      log
WARNING   log + email
CRITICAL  log + email + webhook
EMERGENCY log + email + webhook, repeated every NOTIFY_EMERGENCY_REPEAT_MINUTES until
          acknowledged (console: ctrl+a) or NOTIFY_EMERGENCY_MAX_REPEATS

Sending happens in background tasks (SMTP in a worker thread, webhooks with httpx), so a
slow or dead channel never holds up trading. A failing channel logs an error and is
otherwise ignored. The webhook URL and the SMTP password are secrets: they are never
logged or shown (the log names the channel, not its address). Every message sent and
every channel error goes through core.redaction (a server may echo what it received:
an SMTP rejection quoting the AUTH PLAIN payload).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import smtplib
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlparse

from core.clock import Clock, new_york
from core.config import NotifySettings
from core.logs import guard_http_logs
from core.redaction import redact, register, smtp_auth_payloads

log = logging.getLogger("putdesk.notify")

LEVELS = {"INFO": 0, "WARNING": 1, "CRITICAL": 2, "EMERGENCY": 3}
TIMEOUT_SECONDS = 10.0


@dataclass
class Notification:
    severity: str
    kind: str
    message: str
    at: datetime
    symbol: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    sent: int = 0

    @property
    def title(self) -> str:
        return f"[PutDesk {self.severity}] {self.kind}" + (f" {self.symbol}" if self.symbol
                                                           else "")

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity, "event": self.kind,
                "symbol": self.symbol, "message": self.message,
                "timestamp": self.at.isoformat(), "details": self.data}


def webhook_kind(url: str, configured: str) -> str:
    if configured != "auto":
        return configured
    host = urlparse(url).hostname or ""
    if host.endswith("slack.com"):
        return "slack"
    if host.endswith("discord.com") or host.endswith("discordapp.com"):
        return "discord"
    return "json"


def webhook_payload(n: Notification, kind: str) -> dict[str, Any]:
    text = f"*{n.title}* — {n.message} ({new_york(n.at):%Y-%m-%d %H:%M:%S %Z})"
    if kind == "slack":
        return {"text": text}
    if kind == "discord":
        return {"content": text.replace("*", "**")[:2000]}
    return n.as_dict()


class Notifier:
    def __init__(self, settings: NotifySettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self.emergencies: dict[str, Notification] = {}
        self.sent: list[tuple[str, str]] = []  # (channel, notification id): for the screen
        register(_secrets(settings), source="notifier")

    @property
    def email_enabled(self) -> bool:
        s = self.settings
        return bool(s.email_to and s.smtp_host)

    @property
    def webhook_enabled(self) -> bool:
        return self.settings.webhook_url is not None

    def notify(self, severity: str, kind: str, message: str, symbol: str | None = None,
               data: dict[str, Any] | None = None) -> Notification:
        """Log now; email/webhook in the background. Never raises, never blocks."""
        severity = severity if severity in LEVELS else "WARNING"
        n = Notification(severity, kind, redact(message), self.clock.now(), symbol,
                         dict(data or {}))
        level = LEVELS[severity]
        if level >= LEVELS["WARNING"] and self.email_enabled:
            self._spawn(self._email(n))
        if level >= LEVELS["CRITICAL"] and self.webhook_enabled:
            self._spawn(self._webhook(n))
        if severity == "EMERGENCY":
            self.emergencies[n.id] = n
            self._spawn(self._repeat(n))
        return n

    def acknowledge(self, notification_id: str | None = None) -> int:
        """Stop repeating one EMERGENCY (or all). Returns how many were acknowledged."""
        ids = [notification_id] if notification_id else list(self.emergencies)
        done = 0
        for i in ids:
            if self.emergencies.pop(i, None) is not None:
                done += 1
                log.warning("EMERGENCY %s acknowledged", i)
        return done

    async def drain(self, within: float | None = None) -> None:
        """Wait for the sends in flight (tests, and shutdown)."""
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=within)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            log.error("Notification not sent: no event loop running")
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _repeat(self, n: Notification) -> None:
        s = self.settings
        for _ in range(s.emergency_max_repeats):
            await asyncio.sleep(s.emergency_repeat_minutes * 60)
            if n.id not in self.emergencies:
                return
            log.critical("EMERGENCY (repeat, not acknowledged): %s", n.message)
            if self.email_enabled:
                await self._email(n)
            if self.webhook_enabled:
                await self._webhook(n)
        self.emergencies.pop(n.id, None)

    # --- channels -------------------------------------------------------------------------

    async def _email(self, n: Notification) -> None:
        try:
            await asyncio.to_thread(self._send_email, n)
            n.sent += 1
            self.sent.append(("email", n.id))
        except Exception as exc:
            log.error("Email notification failed (%s:%s): %s", self.settings.smtp_host,
                      self.settings.smtp_port, _safe(exc, self.settings))

    def _send_email(self, n: Notification) -> None:
        s = self.settings
        assert s.smtp_host and s.email_to
        msg = EmailMessage()
        msg["Subject"] = f"{n.title}: {n.message[:120]}"
        msg["From"] = s.email_from
        msg["To"] = ", ".join(a.strip() for a in s.email_to.split(",") if a.strip())
        when = f"{new_york(n.at):%Y-%m-%d %H:%M:%S %Z}"
        msg.set_content(f"{n.message}\n\nEvent: {n.kind}\nSeverity: {n.severity}\n"
                        f"Symbol: {n.symbol or '-'}\nTime: {when}\n\n"
                        f"Details:\n{json.dumps(n.data, indent=2, default=str)}\n")
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.smtp_security == "ssl":
            smtp = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=TIMEOUT_SECONDS,
                                    context=context)
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=TIMEOUT_SECONDS)
        with smtp:
            if s.smtp_security == "starttls":
                smtp.starttls(context=context)
            if s.smtp_user and s.smtp_password is not None:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
            smtp.send_message(msg)

    async def _webhook(self, n: Notification) -> None:
        import httpx  # here, not at the top: httpx pulls in rich, which core never loads

        guard_http_logs()  # httpx logs the request URL, and this one is a secret
        s = self.settings
        assert s.webhook_url is not None
        url = s.webhook_url.get_secret_value()
        kind = webhook_kind(url, s.webhook_kind)
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
                response = await client.post(url, json=webhook_payload(n, kind))
            if response.status_code >= 300:
                log.error("Webhook notification (%s) failed: HTTP %d", kind,
                          response.status_code)
                return
            n.sent += 1
            self.sent.append(("webhook", n.id))
        except Exception as exc:
            log.error("Webhook notification (%s) failed: %s", kind, type(exc).__name__)


def _secrets(s: NotifySettings) -> list[str]:
    values = [secret.get_secret_value() for secret in (s.smtp_password, s.webhook_url)
              if secret is not None]
    if s.smtp_password is not None and s.smtp_password.get_secret_value():
        values += smtp_auth_payloads(s.smtp_user or "", s.smtp_password.get_secret_value())
    return values


def _safe(exc: BaseException, s: NotifySettings) -> str:
    """An exception's text without the secrets it might carry (a server's echo of the
    AUTH payload included)."""
    return redact(str(exc) or type(exc).__name__, _secrets(s))
