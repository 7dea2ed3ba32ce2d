"""A throwaway PostgreSQL server for the test session: initdb + pg_ctl in a temp dir,
listening only on 127.0.0.1. initdb refuses to run as root, so as root the server runs
as the `postgres` OS user (created if missing)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


class PostgresUnavailable(Exception):
    """Why no server could be started (the tests that need one are skipped with it)."""


def _bin_dir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if not candidates:
        raise PostgresUnavailable(
            "no PostgreSQL server binaries (pg_ctl) found; scripts/ensure-postgres.sh "
            "installs them from Debian's packages when run as root")
    return Path(candidates[0]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as(user: str | None, args: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = ["runuser", "-u", user, "--", *args] if user else args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a SQLAlchemy URL to a fresh server; stops and deletes it afterwards."""
    bindir = _bin_dir()
    user: str | None = None
    if os.geteuid() == 0:
        user = "postgres"
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", user],
                           capture_output=True, check=False)
            try:
                pwd.getpwnam(user)
            except KeyError:
                raise PostgresUnavailable("running as root and cannot create the "
                                          "'postgres' user that initdb needs") from None
    tmp = Path(tempfile.mkdtemp(prefix="putdesk-pg-"))
    data, sock = tmp / "data", tmp / "sock"
    sock.mkdir()
    if user:
        entry = pwd.getpwnam(user)
        os.chown(tmp, entry.pw_uid, entry.pw_gid)
        os.chown(sock, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    started = False
    try:
        out = _run_as(user, [str(bindir / "initdb"), "-D", str(data), "-U", "putdesk",
                             "--auth=trust", "-E", "UTF8", "--no-sync"])
        if out.returncode:
            raise PostgresUnavailable(f"initdb failed: {out.stderr.strip()[-400:]}")
        opts = (f"-h 127.0.0.1 -p {port} -k {sock} -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off")
        out = _run_as(user, [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w",
                             "-l", str(tmp / "log"), "start"])
        if out.returncode:
            log = (tmp / "log").read_text() if (tmp / "log").exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed: {(out.stderr + log)[-400:]}")
        started = True
        yield f"postgresql+psycopg://putdesk@127.0.0.1:{port}/postgres"
    finally:
        if started:
            _run_as(user, [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(tmp, ignore_errors=True)
