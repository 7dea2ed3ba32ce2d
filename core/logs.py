"""Logging: one file log per data dir, secrets redacted before anything is written.

Two lines of defence. At the source, nothing PutDesk logs carries a secret (errors name
the channel or the host, never the URL), and httpx/httpcore records have every URL cut to
scheme://host:port by a filter on those loggers themselves, so it applies to every
handler (a test's capture included). Last, each PutDesk handler passes the message and
any traceback through core.redaction (the one redaction path of every output).

The log file is created user-only (0600), rotated files too; a directory PutDesk creates
for it is 0700.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import re
from collections.abc import Iterable
from pathlib import Path

from core import redaction
from core.config import Settings
from core.redaction import secret_values

FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"
#: The loggers of the HTTP client: httpx logs every request's full URL at INFO (the
#: webhook URL is a secret, Barchart's key is a query parameter).
HTTP_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11",
                "httpcore.http2", "httpcore.proxy", "httpcore.socks")

_URL = re.compile(r"""([a-z][a-z0-9+.-]*://)(?:[^\s/?#@"'<>]*@)?([^\s/?#"'<>]*)([^\s"'<>]*)""",
                  re.IGNORECASE)


def redact_urls(text: str) -> str:
    """Every URL in `text` cut to scheme://host[:port]: a URL's user:password, path and
    query are where secrets travel (webhook tokens, API keys)."""
    def cut(m: re.Match[str]) -> str:
        return m.group(1) + m.group(2) + ("/..." if m.group(3) not in ("", "/") else m.group(3))

    return _URL.sub(cut, text)


class UrlRedactingFilter(logging.Filter):
    """On a logger: its records' URLs cut to scheme://host[:port]."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        redacted = redact_urls(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_URL_FILTER = UrlRedactingFilter()


def guard_http_logs() -> None:
    """Install the URL filter on httpx's and httpcore's loggers (idempotent). Called by
    every module that talks HTTP, whether or not setup_logging() ran."""
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _URL_FILTER not in logger.filters:
            logger.addFilter(_URL_FILTER)


class RedactingFilter(logging.Filter):
    """On a handler: the formatted message and the traceback (chained exceptions
    included) through `core.redaction.redact`, with these secret values registered."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        redaction.register(secrets, source="log")

    def redact(self, text: str) -> str:
        return redaction.redact(text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            # The formatter uses exc_text when it is set: format the traceback once, here.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class UserOnlyFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating file log whose files are created 0600 (umask notwithstanding: a log
    holds account figures and operator names). An existing file keeps its mode."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


#: `extra=` of a record that states a command's outcome (HALTED, NOT HALTED): the command
#: prints that line itself, so on stderr it would say the same thing twice.
OUTCOME: dict[str, object] = {"putdesk_outcome": True}


class CommandStderrFilter(logging.Filter):
    """What a one-shot command shows on stderr by default: PutDesk's own warnings (not
    a library's chatter) and anyone's errors, but not the warnings of the loggers the
    command already reports in its output (scan's earnings blocks are its Rejected rows),
    nor the records of its outcome (logged with `extra=OUTCOME`), which it prints itself.
    The log file gets everything either way."""

    def __init__(self, reported: Iterable[str] = ()) -> None:
        super().__init__()
        self.reported = tuple(reported)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "putdesk_outcome", False):
            return False
        if record.levelno >= logging.ERROR:
            return True
        name = record.name
        if not _under(name, ("putdesk",)):
            return False
        return not _under(name, self.reported)


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def stderr_level(verbosity: int) -> int:
    """-v INFO, -vv DEBUG, else WARNING."""
    return logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1 \
        else logging.WARNING


def default_log_path() -> Path:
    from platformdirs import user_data_dir

    base = Path(user_data_dir("putdesk", appauthor=False))
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base / "putdesk.log"


def setup_logging(settings: Settings, *, stderr_level: int | None = None,
                  stderr_filter: logging.Filter | None = None) -> Path:
    """File log for everything at the configured level; optionally echo to stderr (CLI)
    at `stderr_level` (below the file's level only stderr gets the extra records),
    through `stderr_filter` if given."""
    path = settings.app.log_file or default_log_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    redactor = RedactingFilter(secret_values(settings))
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_putdesk", False):
            root.removeHandler(handler)
            handler.close()
    file_handler = UserOnlyFileHandler(path, maxBytes=10_000_000, backupCount=5)
    file_handler.setLevel(settings.app.log_level)
    handlers: list[logging.Handler] = [file_handler]
    root_level: int = logging.getLevelName(settings.app.log_level)  # "INFO" -> 20
    if stderr_level is not None:
        stream = logging.StreamHandler()
        stream.setLevel(stderr_level)
        if stderr_filter is not None:
            stream.addFilter(stderr_filter)
        handlers.append(stream)
        root_level = min(root_level, stderr_level)
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(redactor)
        handler._putdesk = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(root_level)
    # Alembic narrates every migration step at INFO; the operator's log is not for that.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO: quiet, and its URLs are cut anyway.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    guard_http_logs()
    return path
