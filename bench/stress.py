"""Stress test speed: the five scenarios over 500 positions (goal <= 50 ms), and the
P&L curve (41 moves) the stress screen draws.

    python -m bench.stress
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import date, timedelta


def main() -> None:
    import numpy as np

    from core.analysis.stress import Book, BookLine, PortfolioStressTest
    from core.config import load_settings

    rng = random.Random(6)
    today = date(2026, 11, 24)
    symbols = [f"S{i:03d}" for i in range(120)]
    lines = []
    for i in range(500):
        price = rng.uniform(20, 600)
        lines.append(BookLine(symbols[i % len(symbols)], round(price * rng.uniform(0.75, 0.95)),
                              today + timedelta(days=rng.choice([10, 24, 37, 52])),
                              rng.randint(1, 5), price, rng.uniform(0.15, 0.7)))
    book = Book(tuple(lines), (("S001", 300.0, 50.0),), 5_000_000.0, 5_000_000.0,
                1_500_000.0, today, vix=18.0)
    settings = load_settings({}).stress
    runs = []
    for _ in range(30):
        start = time.perf_counter()
        PortfolioStressTest(book, settings).run_all_scenarios()
        runs.append(time.perf_counter() - start)
    curve = []
    test = PortfolioStressTest(book, settings)
    for _ in range(30):
        start = time.perf_counter()
        test.pnl_curve(np.linspace(-0.30, 0.10, 41))
        curve.append(time.perf_counter() - start)
    print(f"stress test, 5 scenarios x {len(lines)} positions ({len(set(symbols))} underlyings; "
          f"every underlying's crash priced at once): median "
          f"{statistics.median(runs) * 1000:.1f} ms, worst {max(runs) * 1000:.1f} ms "
          "(goal <= 50 ms)")
    print(f"P&L curve, 41 moves x {len(lines)} positions: median "
          f"{statistics.median(curve) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
