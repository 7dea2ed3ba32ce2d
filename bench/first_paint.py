"""Console start-to-first-paint against a bare Textual app, in one run.

Each measurement is a fresh Python process (imports included, as an operator sees it):
the parent records the wall time at spawn, the child runs the app headless and reports
when its first frame has been rendered (the first refresh completed after the app is
ready). Median of N runs each. The console child goes the way `putdesk` does: the CLI
module (Typer) imported, the app built with the CLI's settings loader, so the settings
are read and validated, and the log set up, after the first frame; the engine
(database, broker, numpy, calendars) starts after that, in the background. Goal: first
paint within 1.5x the bare app.

    python -m bench.first_paint [--runs 7]
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

GOAL = 1.5

CHILD = r"""
import os, sys, time
t0 = float(os.environ["BENCH_T0"])
which = sys.argv[1]

async def pilot(p):
    # After the app is ready, the next completed refresh is the first frame on screen.
    def painted():
        print(f"PAINT {time.time() - t0:.4f}", flush=True)
        p.app.exit()
    p.app.call_after_refresh(painted)

async def ready_pilot(p):
    # Until the engine has connected and the account figures are on screen.
    import asyncio
    while not (p.app.engine_state and p.app.engine_state.account):
        await asyncio.sleep(0.005)
    def painted():
        print(f"PAINT {time.time() - t0:.4f}", flush=True)
        p.app.exit()
    p.app.call_after_refresh(painted)

if which == "bare":
    from textual.app import App
    from textual.widgets import Footer, Header, Static

    class Bare(App[None]):
        def compose(self):
            yield Header()
            yield Static("hello")
            yield Footer()

    Bare().run(headless=True, size=(120, 40), auto_pilot=pilot)
else:
    from console.cli import read_settings
    from console.app import PutDeskApp

    PutDeskApp(settings_loader=lambda: read_settings(stderr_logs=False),
               install_signal_handlers=False).run(
        headless=True, size=(120, 40), auto_pilot=pilot if which == "console" else ready_pilot)
"""


def measure(which: str, env: dict[str, str]) -> float:
    env = env | {"BENCH_T0": f"{time.time():.6f}"}
    out = subprocess.run([sys.executable, "-c", CHILD, which], capture_output=True, text=True,
                         env=env, timeout=120, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("PAINT "):
            return float(line.split()[1])
    raise RuntimeError(f"{which} did not paint: {out.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env.update({
            "PUTDESK_BROKER": "sim",  # no background gateway left behind by the bench
            "PUTDESK_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "PUTDESK_LOG_FILE": f"{tmp}/bench.log",
            "PUTDESK_ENV_FILE": os.devnull,
        })
        measure("bare", env)  # warm the OS file cache once; not counted
        results = {}
        for which in ("bare", "console", "console-ready"):
            runs = [measure(which, env) for _ in range(args.runs)]
            results[which] = runs
    bare, console = statistics.median(results["bare"]), statistics.median(results["console"])
    ready = statistics.median(results["console-ready"])
    print(f"first paint, median of {args.runs} fresh processes (120x40, headless):")
    print(f"  bare Textual app          : {bare * 1000:7.1f} ms")
    print(f"  PutDesk console           : {console * 1000:7.1f} ms  ({console / bare:.2f}x bare)")
    print(f"  console, account on screen: {ready * 1000:7.1f} ms  (engine started, simulator)")
    report(Result("console first paint vs a bare Textual app",
                  f"{console / bare:.2f}x ({console * 1000:.0f} vs {bare * 1000:.0f} ms)",
                  f"<= {GOAL:g}x", console / bare <= GOAL),
           Result("console with the account on screen (engine started, simulator)",
                  f"{ready * 1000:.0f} ms", "info (no budget)", None))


if __name__ == "__main__":
    main()
