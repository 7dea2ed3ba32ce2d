"""Database access: engine, sessions, migrations.

SQLite (default) runs in WAL mode so the console, the CLI and a second console can read
and write the same file; busy_timeout makes a writer wait for a lock instead of failing.
PostgreSQL is any `postgresql+psycopg://` URL.

Migrations are all or nothing per revision on both backends: each revision runs in its
own transaction with the alembic_version update (env.py). PostgreSQL has transactional
DDL; SQLite has it too, but Python's sqlite3 driver commits DDL on its own, so upgrades
use a separate engine where PutDesk issues BEGIN itself (`_migration_engine`). Before a
SQLite file is upgraded, a copy is taken next to it (`backup_before_upgrade`).
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

from core.redaction import redact

if TYPE_CHECKING:
    from core.config import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


class DatabaseError(Exception):
    """The database cannot be used; the message names the (redacted) URL and the cause."""


class UnknownRevisionError(DatabaseError):
    """The database is at a revision this code does not ship (a newer PutDesk upgraded
    it): nothing may read or write it as if it knew the schema."""

    def __init__(self, message: str, revision: str) -> None:
        super().__init__(message)
        self.revision = revision


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
        # hide_password covers user:password@ only; redact() also covers ?password=.
        self.redacted_url = redact(parsed.render_as_string(hide_password=True))
        self.sqlite_path: Path | None = (
            Path(parsed.database) if parsed.get_backend_name() == "sqlite" and parsed.database
            and parsed.database != ":memory:" and not parsed.database.startswith("file:")
            else None)
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
        self._busy_timeout = busy_timeout
        from core.db import changes

        changes.install()  # every write of orders, trades, rolls announces itself
        self._parsed = parsed
        if self.dialect == "sqlite":
            busy_ms = round(busy_timeout * 1000)
            event.listen(self.engine, "connect",
                         lambda conn, record: _sqlite_pragmas(conn, record, busy_ms))
        #: The identity (device, inode) of the SQLite file this process opened: a file
        #: deleted or replaced under a running process splits its state (kill switch).
        self.file_identity = self.current_file_identity()

    def current_file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the SQLite file at the URL's path now; None when there is
        no file there (or the database is not a SQLite file)."""
        if self.sqlite_path is None:
            return None
        try:
            st = os.stat(self.sqlite_path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def _alembic_config(self, engine: Engine) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["engine"] = engine
        return cfg

    def _migration_engine(self) -> Engine:
        """The engine migrations run on. SQLite: the driver's own transaction handling off
        (isolation_level=None) and BEGIN IMMEDIATE issued at each SQLAlchemy begin, so
        DDL is inside the transaction (SQLAlchemy's documented recipe for SQLite
        transactions); foreign keys off while batch mode copies tables (Alembic's advice).
        PostgreSQL: the normal engine, its DDL is transactional already."""
        if self.dialect != "sqlite":
            return self.engine
        engine = create_engine(self._parsed,
                               connect_args={"timeout": self._busy_timeout,
                                             "isolation_level": None})
        busy_ms = round(self._busy_timeout * 1000)

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
                cursor.execute("PRAGMA foreign_keys=OFF")
            finally:
                cursor.close()

        def on_begin(conn: Any) -> None:
            # IMMEDIATE: take the write lock now, so two processes upgrading at once
            # queue (busy_timeout) instead of failing halfway.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        event.listen(engine, "connect", on_connect)
        event.listen(engine, "begin", on_begin)
        return engine

    def known_revision(self, current: str | None) -> None:
        """Raise UnknownRevisionError when `current` is not a revision of this code."""
        if current is None or current in known_revisions():
            return
        raise UnknownRevisionError(
            f"Database {self.redacted_url}: at schema revision {current}, which this "
            f"PutDesk does not know (it knows up to {head_revision()}): a newer PutDesk "
            "upgraded it. Run that version, or restore the copy taken before the upgrade "
            "(putdesk.db.pre-* next to a SQLite file)", current)

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to `revision`; each revision commits whole or not at all.
        A SQLite file that has data and is behind is copied first."""
        from alembic import command

        current = self.current_revision()
        self.known_revision(current)
        if current is not None and current != head_revision() and revision == "head":
            self.backup_before_upgrade(current)
        engine = self._migration_engine()
        try:
            command.upgrade(self._alembic_config(engine), revision)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"Database {self.redacted_url}: {_first_line(exc)}") from None
        finally:
            if engine is not self.engine:
                engine.dispose()

    def backup_before_upgrade(self, current: str) -> Path | None:
        """Copy a SQLite file before migrating it: `<file>.pre-<target>-from-<current>`,
        user-only, through SQLite's backup API (consistent with the WAL). Returns the
        copy's path (None: not a SQLite file). A copy that exists is kept."""
        import sqlite3

        if self.sqlite_path is None or not self.sqlite_path.exists():
            return None
        target = self.sqlite_path.with_name(
            f"{self.sqlite_path.name}.pre-{head_revision()}-from-{current}")
        if target.exists():
            return target
        partial = target.with_name(target.name + ".partial")
        try:
            fd = os.open(partial, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
            os.close(fd)
            with contextlib.closing(sqlite3.connect(self.sqlite_path,
                                                    timeout=self._busy_timeout)) as src, \
                    contextlib.closing(sqlite3.connect(partial)) as dst:
                src.backup(dst)
            os.replace(partial, target)
        except (OSError, sqlite3.Error) as exc:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise DatabaseError(f"Database {self.redacted_url}: not upgraded, the copy "
                                f"before the upgrade failed ({target}): {exc}") from None
        return target

    def downgrade(self, revision: str) -> None:
        from alembic import command

        engine = self._migration_engine()
        try:
            command.downgrade(self._alembic_config(engine), revision)
        finally:
            if engine is not self.engine:
                engine.dispose()

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


def script_directory() -> Any:
    """Alembic's view of the migrations shipped with this code."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


def head_revision() -> str:
    """The newest migration shipped with this code."""
    head: str | None = script_directory().get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    return {script.revision for script in script_directory().walk_revisions()}


def error_text(exc: BaseException) -> str:
    """A database error as the operator reads it: the driver's first line, no SQL."""
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = (str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__])[0]
    return redact(text)
