"""Every bench, one after the other, then one table of every figure beside its goal.

    python -m bench [NAME ...]      (./dev bench)

Each bench runs in its own process, with the product's logging, and prints its own
lines as it goes; the table at the end is the one README quotes (with the date and the
machine it printed). A bench that does not report through bench.report (the governor's)
has its lines that name a goal copied into the table as they are.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

#: In the order they run; the soak (bench/soak.py) is long and separate.
BENCHES = ["positions_screen", "screening", "stress", "governor", "monitor", "first_paint",
           "cli_start", "paper_gateway"]


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} vCPU {model}, Python {platform.python_version()}, "
            f"load average {load:.1f} at the start")


def main() -> None:
    chosen = sys.argv[1:] or BENCHES
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        sys.exit(f"bench: unknown {', '.join(unknown)} (have: {', '.join(BENCHES)})")
    started = datetime.now(UTC)
    header = f"{started:%Y-%m-%d %H:%M} UTC, {machine()}"
    rows: list[tuple[str, str, str, str]] = []
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            results = Path(tmp) / f"{name}.jsonl"
            print(f"\n== bench.{name}", flush=True)
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", f"bench.{name}"],
                                  env=os.environ | {"BENCH_RESULTS": str(results)},
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  check=False)
            print(proc.stdout, end="", flush=True)
            print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
            if proc.returncode != 0:
                failed.append(name)
                rows.append((name, f"FAILED (exit {proc.returncode})", "", "FAILED"))
                continue
            if results.exists():
                for line in results.read_text().splitlines():
                    r = json.loads(line)
                    verdict = ("info" if r["met"] is None else "MET" if r["met"] else "MISSED")
                    rows.append((r["bench"], r["figure"], r["goal"], verdict))
            else:
                for line in proc.stdout.splitlines():
                    if "goal" in line.lower():
                        rows.append((name, line.strip(), "(in the line)", "see line"))
    print(f"\n== PutDesk benches, {header}\n")
    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"| {'bench':<{width}} | figure | goal | verdict |")
    print(f"| {'-' * width} | --- | --- | --- |")
    for bench, figure, goal, verdict in rows:
        print(f"| {bench:<{width}} | {figure} | {goal} | {verdict} |")
    if failed:
        sys.exit(f"bench: {', '.join(failed)} failed")


if __name__ == "__main__":
    main()
