"""Logging: one file log per data dir, secrets redacted before anything is written."""

from __future__ import annotations

import logging
import logging.handlers
import os
from collections.abc import Iterable
from pathlib import Path

from core.config import Settings

FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"


class RedactingFilter(logging.Filter):
    """Replaces every configured secret value with '***' in the formatted message."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            redacted = self.redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                text = self.redact(str(exc))
                if text != str(exc):
                    record.exc_info = None
                    record.msg = f"{record.msg} [{type(exc).__name__}: {text}]"
        return True


def secret_values(settings: Settings) -> list[str]:
    from urllib.parse import urlsplit

    values: list[str] = []
    for secret in (settings.screener.api_key, settings.earnings.fmp_api_key,
                   settings.notify.smtp_password, settings.notify.webhook_url):
        if secret is not None:
            values.append(secret.get_secret_value())
    if settings.app.database_url is not None:
        url = settings.app.database_url.get_secret_value()
        password = urlsplit(url).password
        if password:
            values.append(password)
    return values


def default_log_path() -> Path:
    from platformdirs import user_data_dir

    base = Path(user_data_dir("putdesk", appauthor=False))
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base / "putdesk.log"


def setup_logging(settings: Settings, *, stderr_level: int | None = None) -> Path:
    """File log for everything; optionally echo to stderr (CLI) at `stderr_level`."""
    path = settings.app.log_file or default_log_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    redactor = RedactingFilter(secret_values(settings))
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_putdesk", False):
            root.removeHandler(handler)
    file_handler = logging.handlers.RotatingFileHandler(path, maxBytes=10_000_000, backupCount=5)
    if path.exists():
        os.chmod(path, 0o600)
    handlers: list[logging.Handler] = [file_handler]
    if stderr_level is not None:
        stream = logging.StreamHandler()
        stream.setLevel(stderr_level)
        handlers.append(stream)
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(redactor)
        handler._putdesk = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(settings.app.log_level)
    # Alembic narrates every migration step at INFO; the operator's log is not for that.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO, and Barchart's key is a query parameter.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    return path
