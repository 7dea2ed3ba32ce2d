"""A PutDesk process's side of the paper gateway: find this data directory's gateway or
start one in the background, and read its world clock.

The first process of a data directory that finds no gateway starts one as its own
background process (`python -m core.paper`, a new session, output in
`paper-gateway.out`), so the world outlives the process that started it; later
processes connect to it. Two processes starting at once both try: the flock lets one
gateway run and the other gateway exits, and both processes then use the one running.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core.paper.clock import Anchor
from core.paper.gateway import INFO_FILE, GatewayError, GatewayInfo, paper_home

if TYPE_CHECKING:
    from core.broker.scenario import Scenario
    from core.config import Settings

OUT_FILE = "paper-gateway.out"
#: Longest wait for a gateway this process started to listen (it loads the market
#: calendar and the scenario first: about a second, more on a loaded machine).
START_TIMEOUT_S = 60.0
POLL_S = 0.05


def scenario_digest(scenario: Scenario) -> str:
    from core.paper.state import scenario_data

    canonical = json.dumps(scenario_data(scenario), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def ensure_gateway(settings: Settings, scenario: Path | None = None,
                   timeout: float = START_TIMEOUT_S) -> GatewayInfo:
    """The running gateway of this data directory, started in the background if there
    is none. `scenario` (or PUTDESK_SIM_SCENARIO) that differs from the running world's
    is a GatewayError saying how to reset."""
    from core.broker.scenario import load_scenario

    home = paper_home(settings)
    asked = scenario or settings.app.sim_scenario
    info = GatewayInfo.read(home)
    if info is None:
        info = _start(home, asked, timeout)
    if asked is not None and info.digest and info.digest != scenario_digest(load_scenario(asked)):
        raise GatewayError(
            f"The paper gateway for {home} (port {info.port}) serves a world made from "
            f"{info.scenario}, not {asked}. To start over from {asked}: stop that gateway "
            f"(kill {info.pid}), then `putdesk paper --reset --scenario {asked}`")
    return info


def _start(home: Path, scenario: Path | None, timeout: float) -> GatewayInfo:
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    args = [sys.executable, "-m", "core.paper"]
    if scenario is not None:
        args += ["--scenario", str(Path(scenario).resolve())]
    out_path = home / OUT_FILE
    with open(out_path, "w") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True, close_fds=True, env=os.environ.copy())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = GatewayInfo.read(home)
        if info is not None:
            return info
        if proc.poll() is not None:
            info = GatewayInfo.read(home)  # another process's gateway won the race
            if info is not None:
                return info
            text = out_path.read_text(errors="replace").strip()
            raise GatewayError(text.removeprefix("paper gateway: ") or
                               f"the paper gateway exited with code {proc.returncode}")
        time.sleep(POLL_S)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    raise GatewayError(f"The paper gateway for {home} did not start within {timeout:g} s "
                       f"(its output: {out_path})")


class GatewayClock:
    """The world's time as the gateway's file states it: every process that reads it
    shows the same time. The file is re-read when it changes (the gateway rewrites it
    when it skips a night), at most every REFRESH_S."""

    REFRESH_S = 0.25

    def __init__(self, home: Path, anchor: Anchor) -> None:
        self._path = home / INFO_FILE
        self._anchor = anchor
        self._checked = time.monotonic()
        self._mtime = self._stat()

    def _stat(self) -> float:
        try:
            return self._path.stat().st_mtime
        except OSError:
            return 0.0

    @property
    def speed(self) -> float:
        """World seconds per wall second (the engine paces market-time loops by it)."""
        return self._anchor.speed

    def now(self) -> datetime:
        if time.monotonic() - self._checked >= self.REFRESH_S:
            self._checked = time.monotonic()
            mtime = self._stat()
            if mtime and mtime != self._mtime:
                self._mtime = mtime
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    data = json.loads(self._path.read_text())
                    self._anchor = Anchor.from_dict(data["clock"])
        return self._anchor.at(time.time())
