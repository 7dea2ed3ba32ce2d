"""Screening, in one run, with the product's logging (INFO to a file, redaction on):

1. a generated 5,000-row Barchart Main-View export screened by columns (read, parse,
   filter: every row's outcome and reason decided, as columns) against pandas.read_csv
   of the same file (also columns), runs interleaved. What follows the screen is timed
   after it, each on its own row: building the passed Candidates and the Rejection
   records as objects (the pipeline does so in a worker thread; the JSON, the screen and
   the audit read them), scoring (a later stage: the pipeline scores what passed the
   earnings gate and IBKR validation), and all of it together; the row-by-row path of
   before for reference. The output is checked identical to the row path's;
2. the CSV limits of issue 17: a 10 MB export (the demo's rows repeated) and a 30 MB
   file on one line, each in a fresh process: time and peak memory (RSS growth);
3. IBKR validation of 100 candidates on the simulator with 200 ms injected latency per
   request, against the pacing-bound limit and against doing them one at a time.

    python -m bench.screening
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.report import Result, ms, production_settings, report

RATIO_GOAL = 2.0
BIG_GOAL_SECONDS = 5.0
BIG_GOAL_MIB = 256

HEADER = ('Symbol,Price~,"Exp Date",DTE,Strike,Type,Moneyness,Bid,"BE (Bid)","%BE (Bid)",'
          'Volume,"Open Int","IV Rank",Delta,Return,"Ann Rtn","Profit Prob"')


def generate(path: Path, rows: int, symbols: dict[str, float], today: date) -> None:
    rng = random.Random(7)
    names = sorted(symbols)
    lines = [HEADER]
    for _ in range(rows):
        sym = rng.choice(names)
        price = symbols[sym]
        strike = round(price * rng.uniform(0.6, 0.98) / 0.5) * 0.5
        exp = today + timedelta(days=rng.choice([10, 17, 24, 31, 38, 45, 59]))
        bid = round(max(0.05, price * rng.uniform(0.001, 0.03)), 2)
        money = (strike - price) / price
        strike_text = f'"{strike:,.2f}"' if strike >= 1000 else f"{strike:.2f}"
        lines.append(
            f"{sym},{price:.2f},{exp:%Y-%m-%d},0,{strike_text},Put,{money:+.2%},{bid},"
            f"{strike - bid:.2f},0%,{rng.randint(0, 5000)},\"{rng.randint(0, 40000):,}\","
            f"{rng.uniform(0, 1):.2%},{rng.uniform(0.02, 0.45):.6f},1%,10%,80%")
    lines.append('"Downloaded from Barchart.com as of 11-24-2026 08:15am CST"')
    path.write_text("\n".join(lines) + "\n")


def bench_parse() -> list[Result]:
    import pandas as pd

    from core.broker.scenario import demo_scenario_path, load_scenario
    from core.screening.columnar import screen_csv_file, screen_exact
    from core.screening.scoring import score_all

    world = load_scenario(demo_scenario_path())
    settings = production_settings()
    today = world.now.date()
    kw: dict[str, Any] = {"today": today, "now": None, "stale_hours": 24.0,
                          "settings": settings.screener}
    spans: dict[str, list[float]] = {k: [] for k in ("screen", "passed", "rejected", "score",
                                                    "pandas")}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.csv"
        generate(path, 5000, {s: u.price for s, u in world.underlyings.items()}, today)
        for _ in range(15):
            start = time.perf_counter()
            screen = screen_csv_file(path, max_bytes=50_000_000, **kw)
            spans["screen"].append(time.perf_counter() - start)
            start = time.perf_counter()
            passed = list(screen.passed)
            spans["passed"].append(time.perf_counter() - start)
            start = time.perf_counter()
            rejected = list(screen.rejected)
            spans["rejected"].append(time.perf_counter() - start)
            start = time.perf_counter()
            scored = score_all(passed, [], settings.risk, settings.validation)
            spans["score"].append(time.perf_counter() - start)
            start = time.perf_counter()
            pd.read_csv(path)
            spans["pandas"].append(time.perf_counter() - start)
        rows = []
        for _ in range(3):
            start = time.perf_counter()
            exact = screen_exact(path.read_bytes(), **kw)
            exact_scored = score_all(exact.passed, [], settings.risk, settings.validation)
            rows.append(time.perf_counter() - start)
    assert exact.passed == passed and exact.rejected == rejected
    assert exact_scored == scored
    med = {k: statistics.median(v) for k, v in spans.items()}
    theirs = med["pandas"]
    ratio = med["screen"] / theirs
    whole = [sum(parts) for parts in zip(spans["screen"], spans["passed"], spans["rejected"],
                                          spans["score"], strict=True)]
    print(f"5,000-row export: screened by columns {ms(med['screen'])} median "
          f"({len(passed)} passed filters, {len(rejected)} rejected); then as objects: "
          f"{len(passed)} candidates {ms(med['passed'])}, {len(rejected):,} rejections "
          f"{ms(med['rejected'])}, scored {ms(med['score'])}; pandas.read_csv {ms(theirs)}; "
          f"row by row {ms(min(rows))}", flush=True)
    return [Result("screening 5,000 rows (read, parse, filter: every candidate and rejection "
                   "with its reason, as columns) vs pandas.read_csv",
                   f"{ratio:.2f}x ({ms(med['screen'])} vs {ms(theirs)})",
                   f"<= {RATIO_GOAL:g}x", ratio <= RATIO_GOAL),
            Result(f"screening: then building the {len(passed)} passed Candidates",
                   ms(med["passed"]), "info (no budget)", None),
            Result(f"screening: then building the {len(rejected):,} rejection records (the "
                   "JSON, the screen and the audit read them)", ms(med["rejected"]),
                   "info (no budget)", None),
            Result(f"screening: then scoring the {len(passed)} (the pipeline scores after "
                   "IBKR validation)", ms(med["score"]), "info (no budget)", None),
            Result("screening all of it: columns, objects, scores",
                   f"{ms(statistics.median(whole))} "
                   f"({statistics.median(whole) / theirs:.1f}x pandas)", "info (no budget)",
                   None),
            Result("screening 5,000 rows, row-by-row path of before (reference)",
                   f"{ms(min(rows))} ({min(rows) / theirs:.1f}x pandas)",
                   "info (no budget)", None)]


BIG_CHILD = r"""
import json, sys, time
from datetime import date
from pathlib import Path
from bench.report import production_settings
from core.screening.barchart_csv import BarchartCsvError
from core.screening.columnar import screen_csv_file
settings = production_settings()
import pyarrow.csv  # imported by the screener on first use: not part of the figure


def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])  # kB


open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from now
before = status("VmRSS:")
start = time.perf_counter()
try:
    screen = screen_csv_file(Path(sys.argv[1]), today=date(2026, 11, 24), now=None,
                             stale_hours=24.0, settings=settings.screener,
                             max_bytes=int(settings.screener.csv_max_mb * 1e6))
    outcome = (f"{len(screen.passed)} passed, {len(screen.rejected)} rejected, "
               f"{screen.duplicates:,} duplicate rows collapsed")
except BarchartCsvError as exc:
    outcome = f"refused: {exc}"
elapsed = time.perf_counter() - start
peak = status("VmHWM:")
print(json.dumps({"seconds": elapsed, "mib": (peak - before) / 1024, "outcome": outcome}))
"""


def bench_big_files() -> list[Result]:
    from core.broker.scenario import demo_scenario_path

    demo = (demo_scenario_path().parent / "demo-barchart.csv").read_text()
    header, *body = demo.strip("\n").splitlines()
    rows = [r for r in body if not r.lower().startswith('"downloaded')]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ten = Path(tmp) / "ten.csv"
        with ten.open("w") as f:
            f.write(header + "\n")
            written = 0
            while written < 10_000_000:
                chunk = "\n".join(rows) + "\n"
                f.write(chunk)
                written += len(chunk)
            f.write('"Downloaded from Barchart.com as of 11-24-2026 08:15am CST"\n')
        one = Path(tmp) / "one-line.csv"
        one.write_text("A," * 15_000_000)
        for label, path in (("10 MB export", ten), ("30 MB one-line file", one)):
            out = subprocess.run([sys.executable, "-c", BIG_CHILD, str(path)],
                                 capture_output=True, text=True, check=True)
            got = json.loads(out.stdout.strip().splitlines()[-1])
            size = path.stat().st_size / 1e6
            print(f"{label} ({size:.1f} MB): {got['seconds']:.2f} s, peak RSS +"
                  f"{got['mib']:.0f} MiB: {got['outcome']}", flush=True)
            results.append(Result(
                f"CSV {label} ({size:.0f} MB): time, peak RSS growth",
                f"{got['seconds']:.2f} s, +{got['mib']:.0f} MiB",
                f"<= {BIG_GOAL_SECONDS:g} s, <= {BIG_GOAL_MIB} MiB",
                got["seconds"] <= BIG_GOAL_SECONDS and got["mib"] <= BIG_GOAL_MIB))
    return results


async def bench_validation() -> list[Result]:
    from core.broker.pacing import Pacer
    from core.broker.scenario import demo_scenario_path, load_scenario
    from core.broker.sim import SimBroker
    from core.clock import ManualClock
    from core.models import Candidate
    from core.screening.validator import Validator

    world = load_scenario(demo_scenario_path())
    sim = SimBroker(world, clock=ManualClock(world.now))
    await sim.connect()
    settings = production_settings().validation
    latency = 0.2
    sim.faults.latency_seconds = latency
    symbols = sorted(world.underlyings)[:20]
    expiry = world.now.date() + timedelta(days=24)
    candidates = []
    for i in range(100):
        sym = symbols[i % len(symbols)]
        price = world.underlyings[sym].price
        strike = round(price * (0.85 - 0.01 * (i // len(symbols))), 0)
        candidates.append(Candidate(sym, expiry, strike, price, 24, (price - strike) / price,
                                    bid=1.0))
    pacer = Pacer(settings.pacing_msgs_per_sec)
    start = time.perf_counter()
    await Validator(sim, settings, pacer).validate(candidates)
    elapsed = time.perf_counter() - start
    bound = pacer.sent / settings.pacing_msgs_per_sec + latency
    serial = pacer.sent * latency
    print(f"validation of 100 candidates, {latency * 1000:.0f} ms latency, "
          f"{pacer.sent} requests at {settings.pacing_msgs_per_sec:g}/s: {elapsed:.2f} s; "
          f"pacing-bound limit {bound:.2f} s; one at a time would be {serial:.1f} s")
    return [Result(f"validation of 100 candidates ({latency * 1000:.0f} ms latency) vs the "
                   "pacing-bound limit", f"{elapsed:.2f} s ({elapsed / bound:.2f}x the limit)",
                   "info (no budget)", None)]


def main() -> None:
    results = bench_parse()
    results += bench_big_files()
    results += asyncio.run(bench_validation())
    report(*results)


if __name__ == "__main__":
    main()
