"""The console in a real process on a real terminal (a pty), told to stop by a signal:
a trading console halts the book (persisted, by "signal to console"), cancels what it
works and exits non-zero (128 + the signal); a read-only watcher whose terminal goes
only closes: the book it watches is not halted."""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from core.clock import SystemClock
from core.db.session import Database
from core.risk.kill_switch import KillSwitch

REPO = Path(__file__).parents[2]


def run_console_then(tmp_path: Path, sig: signal.Signals, *args: str) -> tuple[int, str]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = os.environ | {"PUTDESK_DATABASE_URL": f"sqlite:///{tmp_path}/putdesk.db",
                        "PUTDESK_LOG_FILE": str(tmp_path / "putdesk.log"),
                        "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
    proc = subprocess.Popen([sys.executable, "-m", "console", *args], stdin=slave,
                            stdout=slave, stderr=slave, env=env, cwd=REPO,
                            start_new_session=True)
    os.close(slave)
    screen = bytearray()

    def drain() -> None:  # the child must never block writing to its terminal
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        log = tmp_path / "putdesk.log"
        deadline = time.monotonic() + 60
        # The engine's signal handlers are in place before it connects.
        while not (log.exists() and "Broker connected" in log.read_text()):
            assert proc.poll() is None, screen.decode(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the console did not start"
            time.sleep(0.1)
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=5)
        os.close(master)
    return code, screen.decode(errors="replace")


def halt_state(tmp_path: Path):
    return KillSwitch(Database(f"sqlite:///{tmp_path}/putdesk.db"), SystemClock()).sync()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_trading_console_halts_and_exits_non_zero(tmp_path, sig):
    code, _screen = run_console_then(tmp_path, sig)
    assert code == 128 + sig
    state = halt_state(tmp_path)
    assert state.halted and state.reason == f"Signal {sig.name} received"
    assert state.by.startswith("signal to console ")


def test_a_read_only_watcher_losing_its_terminal_does_not_halt_the_book(tmp_path):
    code, _screen = run_console_then(tmp_path, signal.SIGHUP, "--read-only")
    assert code == 128 + signal.SIGHUP
    assert not halt_state(tmp_path).halted
