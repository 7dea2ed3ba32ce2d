"""Screening throughput, in one run:

1. parse + filter + score of a generated 5,000-row Barchart Main-View export, against
   pandas.read_csv of the same file (just reading it, no normalisation);
2. IBKR validation of 100 candidates on the simulator with 200 ms injected latency per
   request, against the pacing-bound limit (requests / allowed rate + one latency) and
   against doing them one at a time.

    python -m bench.screening
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

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


def bench_parse() -> None:
    import pandas as pd

    from core.broker.scenario import demo_scenario_path, load_scenario
    from core.config import load_settings
    from core.screening.barchart_csv import read_barchart_csv
    from core.screening.filters import apply_filters
    from core.screening.scoring import score

    world = load_scenario(demo_scenario_path())
    settings = load_settings()
    today = world.now.date()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.csv"
        generate(path, 5000, {s: u.price for s, u in world.underlyings.items()}, today)
        best_ours, best_pandas = float("inf"), float("inf")
        for _ in range(5):
            start = time.perf_counter()
            scan = read_barchart_csv(path, today=today)
            passed, _rejected, _notes = apply_filters(scan.candidates, settings.screener)
            scored = [score(c, [], settings.risk, settings.validation) for c in passed]
            best_ours = min(best_ours, time.perf_counter() - start)
            start = time.perf_counter()
            pd.read_csv(path)
            best_pandas = min(best_pandas, time.perf_counter() - start)
    print(f"5,000-row export: parse+filter+score {best_ours * 1000:.1f} ms "
          f"({len(scan.candidates)} parsed, {len(passed)} passed filters, {len(scored)} scored)")
    print(f"  pandas.read_csv of the same file {best_pandas * 1000:.1f} ms; "
          f"ratio {best_ours / best_pandas:.2f}x")


async def bench_validation() -> None:
    from core.broker.pacing import Pacer
    from core.broker.scenario import demo_scenario_path, load_scenario
    from core.broker.sim import SimBroker
    from core.clock import ManualClock
    from core.config import load_settings
    from core.models import Candidate
    from core.screening.validator import Validator

    world = load_scenario(demo_scenario_path())
    sim = SimBroker(world, clock=ManualClock(world.now))
    await sim.connect()
    settings = load_settings().validation
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
          f"{pacer.sent} requests at {settings.pacing_msgs_per_sec:g}/s:")
    print(f"  {elapsed:.2f} s; pacing-bound limit {bound:.2f} s (ratio {elapsed / bound:.2f}); "
          f"one at a time would be {serial:.1f} s")


def main() -> None:
    bench_parse()
    asyncio.run(bench_validation())


if __name__ == "__main__":
    main()
