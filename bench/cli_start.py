"""`putdesk status` and `putdesk emergency-stop` as an operator runs them from a second
terminal: wall time and peak memory (max RSS) of a fresh process each, median wall and
highest peak of N, on the simulator (`PUTDESK_BROKER=sim`) and on the paper gateway (the
default), logging as in production (the CLI sets it up itself). Goal: under 1 s and
under 100 MiB each.

One warm-up run per broker first creates the database, the calendar's disk cache, the
paper gateway (started by that run, stopped at the end) and Python's bytecode cache, as
the first command after an install does: pip writes an installed package's bytecode,
and an editable install writes it on first import. PYTHONDONTWRITEBYTECODE (set on some
development machines) would have every run compile PutDesk's sources again, which no
installed PutDesk does; so the bench keeps the bytecode in its temporary directory
(PYTHONPYCACHEPREFIX), and prints that case (the simulator's `status` with the variable
set and no bytecode for PutDesk's own sources) on one line for information.

    python -m bench.cli_start [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import Result, report

GOAL_SECONDS = 1.0
GOAL_MIB = 100
GOAL = f"< {GOAL_SECONDS:g} s, < {GOAL_MIB} MiB"
COMMANDS = {"status": ["status", "--json"],
            "emergency-stop": ["emergency-stop", "bench: halt from a second terminal"]}
BROKERS = {"sim": "simulator", "paper": "paper gateway"}


def measure(args: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MiB, CPU seconds) of one `putdesk` process. The CPU time
    tells a loaded machine (wall far above CPU) from a slow command."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "console", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"putdesk {' '.join(args)} failed: "
                           f"{proc.stderr.read().decode() if proc.stderr else ''}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def figure(runs: list[tuple[float, float, float]]) -> tuple[float, float, str]:
    wall, mib = statistics.median(r[0] for r in runs), max(r[1] for r in runs)
    cpu = statistics.median(r[2] for r in runs)
    return wall, mib, f"{wall:.2f} s ({cpu:.2f} s CPU), {mib:.0f} MiB"


def stop_gateway(home: Path) -> None:
    from core.paper.gateway import INFO_FILE, gateway_running

    info = home / INFO_FILE
    if not info.exists():
        return
    os.kill(json.loads(info.read_text())["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 30
    while gateway_running(home) and time.monotonic() < deadline:
        time.sleep(0.05)  # it saves the world on the way out; not timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        base |= {"PYTHONPYCACHEPREFIX": f"{tmp}/pycache", "PUTDESK_ENV_FILE": os.devnull,
                 "PUTDESK_CACHE_DIR": f"{tmp}/cache"}
        for broker, label in BROKERS.items():
            home = Path(tmp) / broker
            home.mkdir()
            env = base | {"PUTDESK_BROKER": broker,
                          "PUTDESK_DATABASE_URL": f"sqlite:///{home}/putdesk.db",
                          "PUTDESK_LOG_FILE": str(home / "putdesk.log")}
            try:
                measure(COMMANDS["status"], env)  # warm-up (see the module doc)
                for name, args in COMMANDS.items():
                    runs = []
                    for _ in range(opts.runs):
                        runs.append(measure(args, env))
                        if name == "emergency-stop":
                            measure(["resume-trading", "--yes"], env)  # not timed
                    wall, mib, text = figure(runs)
                    print(f"putdesk {name} on the {label}: median {text} peak "
                          f"({opts.runs} fresh processes)", flush=True)
                    results.append(Result(f"putdesk {name} (fresh process, {label})", text,
                                          GOAL, wall < GOAL_SECONDS and mib < GOAL_MIB))
                if broker == "sim":
                    # Installed packages keep their own bytecode; PutDesk's sources (an
                    # editable install) are compiled again at every run.
                    cold = {k: v for k, v in env.items() if k != "PYTHONPYCACHEPREFIX"}
                    cold["PYTHONDONTWRITEBYTECODE"] = "1"
                    _wall, _mib, text = figure([measure(COMMANDS["status"], cold)
                                                for _ in range(opts.runs)])
                    results.append(Result(f"putdesk status ({label}), PYTHONDONTWRITEBYTECODE"
                                          "=1: PutDesk's sources compiled at every run", text,
                                          "info: the goal is for an installed PutDesk", None))
            finally:
                stop_gateway(home)
    report(*results)


if __name__ == "__main__":
    main()
