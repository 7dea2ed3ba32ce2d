"""`putdesk paper` as a real process for tests: started, waited for (its first status
line), stopped."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.paper.gateway import INFO_FILE


@dataclass
class Gateway:
    proc: subprocess.Popen[str]
    home: Path
    port: int
    first_line: str

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> str:
        """Signal it and return the rest of its output."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=timeout)
        return out


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return os.environ | {
        "PUTDESK_DATABASE_URL": f"sqlite:///{home}/putdesk.db",
        "PUTDESK_LOG_FILE": str(home / "putdesk.log"),
    } | extra


def start(home: Path, *args: str, env: dict[str, str] | None = None,
          timeout: float = 60) -> Gateway:
    """Start `putdesk paper ARGS` on the data directory `home` and wait until it serves
    (its first status line comes after it listens). A gateway that exits instead raises
    with its output."""
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "console", "paper", *args],
                            env=env or env_for(home), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the first status line or EOF
    if not line.startswith("paper gateway"):
        with contextlib.suppress(subprocess.TimeoutExpired):
            rest, _ = proc.communicate(timeout=timeout)
            line += rest
        proc.kill()
        raise RuntimeError(f"putdesk paper did not start: {line}")
    port = json.loads((home / INFO_FILE).read_text())["port"]
    return Gateway(proc, home, port, line)


@contextlib.contextmanager
def running(home: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Gateway]:
    gw = start(home, *args, env=env)
    try:
        yield gw
    finally:
        if gw.proc.poll() is None:
            gw.proc.send_signal(signal.SIGTERM)
            try:
                gw.proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                gw.proc.kill()
                gw.proc.communicate()
