"""`putdesk status` and `putdesk emergency-stop` are what an operator runs from a second
terminal, often in a hurry: they must not load what they never use. Each module below
cost `status` memory or start-up time once (bench/cli_start.py measures both, with the
goals): scipy (the simulator's normal CDF), Alembic and Mako (the schema check on every
call), SQLAlchemy's PostgreSQL dialect on a SQLite database; pandas, pyarrow and
exchange_calendars belong to screening and the calendar's first build only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.paper.gateway import INFO_FILE

HEAVY = ("scipy", "pandas", "pyarrow", "exchange_calendars", "alembic", "mako", "textual",
         "sqlalchemy.dialects.postgresql")

#: `python -m console ARGS` exactly, writing the names of the modules it loaded on exit.
PROBE = (
    "import atexit, json, os, runpy, sys\n"
    "atexit.register(lambda: open(os.environ['LOADED_MODULES'], 'w').write("
    "json.dumps(sorted(sys.modules))))\n"
    "sys.argv = ['putdesk', *sys.argv[1:]]\n"
    "runpy.run_module('console', run_name='__main__', alter_sys=True)\n"
)


@pytest.fixture(params=["sim", "paper"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = os.environ | {"PUTDESK_BROKER": request.param,
                        "PUTDESK_DATABASE_URL": f"sqlite:///{tmp_path}/putdesk.db",
                        "PUTDESK_LOG_FILE": str(tmp_path / "putdesk.log"),
                        "PUTDESK_CACHE_DIR": str(tmp_path / "cache"),
                        "LOADED_MODULES": str(tmp_path / "modules.json")}
    yield env
    info = tmp_path / INFO_FILE  # the gateway the first paper command started
    if info.exists():
        os.kill(json.loads(info.read_text())["pid"], signal.SIGTERM)


def loaded(env: dict[str, str], *args: str) -> set[str]:
    r = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, text=True,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return set(json.loads(Path(env["LOADED_MODULES"]).read_text()))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_status_and_emergency_stop_load_nothing_heavy(env: dict[str, str]) -> None:
    # The first run creates the database (Alembic) and the calendar's disk cache (here,
    # or the paper gateway it starts does); later runs need neither.
    assert "alembic" in loaded(env, "status", "--json")
    assert heavy(loaded(env, "status", "--json")) == []
    assert heavy(loaded(env, "status")) == []  # the human view too (rich is allowed there)
    assert heavy(loaded(env, "emergency-stop", "lean test")) == []
    assert heavy(loaded(env, "resume-trading", "--yes")) == []
