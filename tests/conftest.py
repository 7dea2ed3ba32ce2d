"""Shared fixtures: isolation from the machine, databases on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from core.config import all_settings_defaults
from core.db.session import Database
from tests.postgres_server import PostgresUnavailable, postgres_server

#: The fuzz seed and budget (printed in the header; see tests/fuzz/__init__.py).
pytest_plugins = ["tests.fuzz.plugin"]

# --- isolation: no developer .env, no real home, no stray settings --------------------


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for _group, name, _default, _doc in all_settings_defaults():
        monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("PUTDESK_ENV_FILE", os.devnull)
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    # The suite runs on the in-process simulator (fast, one world per test); tests of
    # the paper gateway ask for it explicitly.
    monkeypatch.setenv("PUTDESK_BROKER", "sim")


# --- databases ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    try:
        with postgres_server() as url:
            yield url
    except PostgresUnavailable as why:
        print(f"\nPostgreSQL tests skipped: {why}")
        pytest.skip(f"PostgreSQL unavailable: {why}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Database]:
    """An upgraded database: SQLite in tmp_path, or a fresh database on the test server."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path}/test.db")
    else:
        server = request.getfixturevalue("pg_url")
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        database = Database(server.rsplit("/", 1)[0] + f"/{name}")
    database.upgrade()
    yield database
    database.dispose()
