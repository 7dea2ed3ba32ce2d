"""`putdesk status` and `putdesk emergency-stop` as an operator runs them from a second
terminal: wall time and peak memory of a fresh process each (median of N, after one
warm-up run that creates the database and the calendar cache), on the simulator's demo
world, logging as in production (the CLI sets it up itself). Goal: under 1 s and under
100 MiB each.

    python -m bench.cli_start [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench.report import Result, report

GOAL_SECONDS = 1.0
GOAL_MIB = 100


def measure(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one `putdesk` process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "console", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"putdesk {' '.join(args)} failed: "
                           f"{proc.stderr.read().decode() if proc.stderr else ''}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        # The in-process simulator, as the figures say (the paper gateway's own bench
        # measures `status` against a running gateway).
        env = dict(os.environ) | {"PUTDESK_BROKER": "sim",
                                  "PUTDESK_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                                  "PUTDESK_LOG_FILE": f"{tmp}/putdesk.log",
                                  "PUTDESK_ENV_FILE": os.devnull}
        commands = {"status": ["status", "--json"],
                    "emergency-stop": ["emergency-stop", "bench: halt from a second terminal"]}
        measure(commands["status"], env)  # warm-up: database, calendar cache, file cache
        for name, args in commands.items():
            runs = []
            for _ in range(opts.runs):
                runs.append(measure(args, env))
                if name == "emergency-stop":
                    measure(["resume-trading", "--yes"], env)  # not timed
            wall = statistics.median(r[0] for r in runs)
            mib = max(r[1] for r in runs)
            print(f"putdesk {name}: median {wall:.2f} s wall, peak {mib:.0f} MiB "
                  f"({opts.runs} fresh processes)", flush=True)
            results.append(Result(f"putdesk {name} (fresh process, simulator)",
                                  f"{wall:.2f} s, {mib:.0f} MiB",
                                  f"< {GOAL_SECONDS:g} s, < {GOAL_MIB} MiB",
                                  wall < GOAL_SECONDS and mib < GOAL_MIB))
    report(*results)


if __name__ == "__main__":
    main()
