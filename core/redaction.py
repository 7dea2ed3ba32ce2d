"""One redaction path for every output: the log handlers, the CLI's stdout/stderr (its
fail(), JSON and tables), the database URL PutDesk shows, audit rows and notifications all
pass their text through `redact()`.

Two layers, because a secret can arrive in text PutDesk did not write (a server's error
body, an SMTP rejection that echoes the AUTH line, a driver's message):

- Shapes that are secret wherever they appear, configured or not: a URL's password
  (`scheme://user:***@host`), password/key/token query parameters (`?password=***`),
  `password=...` in a connection string, and the payload of an SMTP AUTH command.
- The values configured in this process (`register()`, done by setup_logging and by the
  notifier), with the forms they take on the wire: URL-quoted and -unquoted, JSON- and
  repr-escaped, base64 (an SMTP AUTH LOGIN password) and the base64 of the AUTH PLAIN
  payload ("\\0user\\0password").
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

if TYPE_CHECKING:
    from core.config import Settings

MASK = "***"
#: Shorter values are not replaced: "abc" would mangle every message containing it.
MIN_SECRET_LENGTH = 4

#: scheme://user:password@ -> scheme://user:***@ (the password may hold ':' and '@')
_USERINFO = re.compile(
    r"""(?P<head>[a-z][a-z0-9+.-]*://[^\s:/?#@"'<>]*):(?P<pw>[^\s/?#"'<>]*)@""", re.IGNORECASE)
#: Query or key=value parameters whose value is a credential.
_SECRET_NAMES = (r"password|passwd|pwd|pass|apikey|api_key|api-key|key|token|access_token|"
                 r"auth_token|secret|client_secret|signature|sig")
_PARAM = re.compile(rf"""(?P<head>[?&;](?:{_SECRET_NAMES})=)(?P<value>[^&#\s"'<>]+)""",
                    re.IGNORECASE)
#: libpq-style "password=... " in a connection string or a driver's message.
_KEYWORD = re.compile(r"""(?P<head>\b(?:password|passwd)\s*=\s*)(?P<value>'[^']*'|[^\s&;,"']+)""",
                      re.IGNORECASE)
#: SMTP "AUTH PLAIN <base64>" / "AUTH LOGIN <base64>" echoed by a server.
_SMTP_AUTH = re.compile(r"(?P<head>\bAUTH\s+(?:PLAIN|LOGIN|XOAUTH2|CRAM-MD5)\s+)(?P<value>\S+)",
                        re.IGNORECASE)

_lock = threading.Lock()
_sources: dict[str, set[str]] = {}
_secrets: tuple[str, ...] = ()


def variants(value: str) -> list[str]:
    """The forms a secret takes in text: as is, URL-quoted/-unquoted, JSON- and
    repr-escaped, base64."""
    out = [value, unquote(value), quote(value, safe=""), json.dumps(value)[1:-1],
           repr(value)[1:-1], base64.b64encode(value.encode()).decode()]
    return [v for v in out if len(v) >= MIN_SECRET_LENGTH]


def smtp_auth_payloads(user: str, password: str) -> list[str]:
    """The base64 an SMTP client sends for AUTH PLAIN (and LOGIN's user line does not
    matter: the user is not a secret)."""
    plain = f"\0{user}\0{password}".encode()
    return [base64.b64encode(plain).decode(), base64.b64encode(password.encode()).decode()]


def register(values: Iterable[str], source: str = "settings") -> None:
    """Set the secret values (and their variants) `source` knows: the settings loaded,
    a log handler's, a notifier's. A source's new list replaces its old one, so settings
    loaded again (tests do it thousands of times) do not pile up."""
    global _secrets
    with _lock:
        _sources[source] = {v for value in values if value for v in variants(value)}
        merged = set().union(*_sources.values())
        _secrets = tuple(sorted(merged, key=len, reverse=True))


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """`text` with every secret replaced by ***: the secret shapes, the registered
    values and `extra` values."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    text = _PARAM.sub(lambda m: m["head"] + MASK, text)
    text = _KEYWORD.sub(lambda m: m["head"] + MASK, text)
    text = _SMTP_AUTH.sub(lambda m: m["head"] + MASK, text)
    extras = sorted({v for value in extra if value for v in variants(value)}, key=len,
                    reverse=True)
    for secret in (*extras, *_secrets):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def secret_values(settings: Settings) -> list[str]:
    """Every secret of these settings as it could appear in text: the values, the parts
    of URLs, and the SMTP AUTH payloads built from the password."""
    values: list[str] = []
    for secret in (settings.screener.api_key, settings.earnings.fmp_api_key):
        if secret is not None:
            values.append(secret.get_secret_value())
    notify = settings.notify
    if notify.smtp_password is not None:
        password = notify.smtp_password.get_secret_value()
        values.append(password)
        if password:
            values += smtp_auth_payloads(notify.smtp_user or "", password)
    if notify.webhook_url is not None:
        url = notify.webhook_url.get_secret_value()
        values.append(url)
        parts = urlsplit(url)
        # The path and query carry the token (Slack, Discord); a client may print them
        # apart from the host, or normalised.
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        if len(tail) >= 8:
            values.append(tail)
        values += _url_credentials(url)
    if settings.app.database_url is not None:
        values += _url_credentials(settings.app.database_url.get_secret_value())
    return [v for v in values if v]


def _url_credentials(url: str) -> list[str]:
    """A URL's password and its credential query parameters (`?password=`)."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
    except ValueError:  # a port that is no number: the shapes above still apply
        return []
    names = set(_SECRET_NAMES.split("|"))
    found += [v for k, v in parse_qsl(parts.query, keep_blank_values=False)
              if k.lower() in names]
    return [v for v in found if v]


class RedactingStream:
    """A text stream that passes what is written through redact() (the CLI's stdout and
    stderr: tables, JSON, messages, a traceback). Everything else is the wrapped stream's."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    @property
    def wrapped(self) -> Any:
        return self._stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
