"""Database access: engine, sessions, migrations.

SQLite (default) runs in WAL mode so the console, the CLI and a second console can read
and write the same file; busy_timeout makes a writer wait for a lock instead of failing.
PostgreSQL is any `postgresql+psycopg://` URL.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import Session

if TYPE_CHECKING:
    from core.config import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


class DatabaseError(Exception):
    """The database cannot be used; the message names the (redacted) URL and the cause."""


def default_sqlite_url() -> str:
    from platformdirs import user_data_dir

    base = Path(user_data_dir("putdesk", appauthor=False))
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return f"sqlite:///{base / 'putdesk.db'}"


def database_url(settings: Settings) -> str:
    secret = settings.app.database_url
    return secret.get_secret_value() if secret is not None else default_sqlite_url()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, busy_ms: int = 5000) -> None:
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _prepare_sqlite_file(url: URL) -> None:
    """Create a new database file user-only (0600) before SQLite does (it would use the
    umask); SQLite gives its -wal, -shm and -journal files the database file's mode. A
    directory made for it is 0700. A file that exists already keeps its mode."""
    if not url.database or url.database == ":memory:":
        return
    path = Path(url.database)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class Database:
    def __init__(self, url: str, busy_timeout: float = 5.0) -> None:
        """`busy_timeout`: how long a SQLite statement waits for another process's lock
        before failing with "database is locked"."""
        self.url = url
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError) as exc:  # ValueError: a port that is no number
            # The message is the parser's, never the URL: it may hold a password.
            raise DatabaseError(f"PUTDESK_DATABASE_URL is not a database URL: {exc}") from None
        self.redacted_url = parsed.render_as_string(hide_password=True)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.dialect == "sqlite":
            try:
                _prepare_sqlite_file(parsed)
            except OSError as exc:
                raise DatabaseError(f"Database {self.redacted_url}: {exc}") from None
            kwargs["connect_args"] = {"timeout": busy_timeout}
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except (SQLAlchemyError, ImportError) as exc:
            raise DatabaseError(f"Database {self.redacted_url}: {exc}") from None
        if self.dialect == "sqlite":
            busy_ms = round(busy_timeout * 1000)
            event.listen(self.engine, "connect",
                         lambda conn, record: _sqlite_pragmas(conn, record, busy_ms))

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def _alembic_config(self) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["engine"] = self.engine
        return cfg

    def upgrade(self, revision: str = "head") -> None:
        from alembic import command

        try:
            command.upgrade(self._alembic_config(), revision)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"Database {self.redacted_url}: {_first_line(exc)}") from None

    def downgrade(self, revision: str) -> None:
        from alembic import command

        command.downgrade(self._alembic_config(), revision)

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        try:
            with self.engine.connect() as conn:
                rev: str | None = MigrationContext.configure(conn).get_current_revision()
                return rev
        except SQLAlchemyError as exc:
            raise DatabaseError(f"Database {self.redacted_url}: {_first_line(exc)}") from None

    def dispose(self) -> None:
        self.engine.dispose()


def head_revision() -> str:
    """The newest migration shipped with this code."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def error_text(exc: BaseException) -> str:
    """A database error as the operator reads it: the driver's first line, no SQL."""
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    return (str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__])[0]
