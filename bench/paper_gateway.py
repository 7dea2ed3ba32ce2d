"""The paper gateway: what it costs a command, and one request's round trip.

- `putdesk status --json` as an operator runs it (a fresh process, imports included,
  production logging to the log file), once starting the gateway (the first command of
  a data directory) and then N times with it running (median);
- one request round trip (reqCurrentTime) through the real IBKR adapter to a running
  gateway, median and p95 of M.

    python -m bench.paper_gateway [--runs 5] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_STATUS_RUNNING_S = 3.0  # a one-shot command's whole life on a running gateway
GOAL_STATUS_STARTING_S = 6.0  # the first command also starts the gateway
GOAL_ROUND_TRIP_MS = 5.0  # one request over loopback


def status_once(env: dict[str, str]) -> float:
    started = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "console", "status", "--json"], env=env,
                       capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - started
    if r.returncode != 0:
        raise SystemExit(f"putdesk status failed: {r.stderr[-500:]}")
    return took


async def round_trips(port: int, n: int) -> tuple[list[float], list[float]]:
    """(raw, adapter) round trips in ms: ib_async's reqCurrentTime straight to the
    gateway, and the IBKR adapter's current_time(), which goes through PutDesk's pacer
    (45 messages a second: back-to-back requests wait their turn)."""
    from ib_async import IB

    from core.broker.ibkr import IbkrBroker
    from core.config import load_settings

    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=78, timeout=20)
    raw = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            await ib.reqCurrentTimeAsync()
            raw.append((time.perf_counter() - t0) * 1000)
    finally:
        ib.disconnect()
    broker = IbkrBroker(load_settings({"PUTDESK_IBKR_PORT": port,
                                       "PUTDESK_IBKR_CLIENT_ID": 77}).ibkr)
    await broker.connect()
    paced = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            await broker.current_time()
            paced.append((time.perf_counter() - t0) * 1000)
    finally:
        await broker.disconnect()
    return raw, paced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    from core.paper.gateway import gateway_running

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        home = Path(tmp)
        env = os.environ | {"PUTDESK_BROKER": "paper",
                            "PUTDESK_DATABASE_URL": f"sqlite:///{home}/putdesk.db",
                            "PUTDESK_LOG_FILE": str(home / "putdesk.log"),
                            "PUTDESK_ENV_FILE": os.devnull}
        info_file = home / "paper-gateway.json"
        try:
            starting = status_once(env)
            running = [status_once(env) for _ in range(args.runs)]
            port = json.loads(info_file.read_text())["port"]
            trips = asyncio.run(round_trips(port, args.requests))
        finally:
            if info_file.exists():
                os.kill(json.loads(info_file.read_text())["pid"], signal.SIGTERM)
            deadline = time.monotonic() + 30
            while gateway_running(home) and time.monotonic() < deadline:
                time.sleep(0.05)  # it saves the world on the way out
    print(f"putdesk status, starting the gateway:  {starting:.2f} s   "
          f"(goal ≤ {GOAL_STATUS_STARTING_S:g} s)")
    print(f"putdesk status, gateway running:       {statistics.median(running):.2f} s median "
          f"of {args.runs} ({min(running):.2f}–{max(running):.2f})   "
          f"(goal ≤ {GOAL_STATUS_RUNNING_S:g} s)")
    raw, paced = trips
    for label, values, goal in (("request round trip (reqCurrentTime):", raw,
                                 f"(goal ≤ {GOAL_ROUND_TRIP_MS:g} ms)"),
                                ("the same through the adapter's pacer:", paced,
                                 "(paced at 45/s: ~22 ms back to back)")):
        values = sorted(values)
        p95 = values[int(0.95 * (len(values) - 1))]
        print(f"{label:<39}{statistics.median(values):.2f} ms median, p95 {p95:.2f} ms "
              f"of {len(values)}   {goal}")

if __name__ == "__main__":
    main()
