"""Builds core/data/scenarios/demo-barchart.csv: a Barchart Main-View export of the demo
world (simulated, priced by the simulator itself), for trying the Candidates screen.

    python scripts/gen_demo_barchart.py > core/data/scenarios/demo-barchart.csv
"""

import asyncio
from datetime import date

from core.broker.base import OptionContract
from core.broker.scenario import demo_scenario_path, load_scenario
from core.broker.sim import SimBroker
from core.clock import ManualClock

HEADER = ('Symbol,Price~,"Exp Date",DTE,Strike,Type,Moneyness,Bid,"BE (Bid)","%BE (Bid)",'
          'Volume,"Open Int","IV Rank",Delta,Return,"Ann Rtn","Profit Prob"')


async def main() -> None:
    world = load_scenario(demo_scenario_path())
    sim = SimBroker(world, clock=ManualClock(world.now))
    await sim.connect()
    today = world.now.date()
    print(HEADER)
    for n, (sym, und) in enumerate(sorted(world.underlyings.items())):
        for exp in (date(2026, 12, 18), date(2026, 12, 31)):
            for otm in (0.07, 0.11, 0.15, 0.21):
                step = 5.0 if und.price >= 200 else 2.5 if und.price >= 50 else 1.0
                strike = round(und.price * (1 - otm) / step) * step
                q = await sim.option_quote(OptionContract(sym, exp, strike))
                if not q.bid:
                    continue
                dte = (exp - today).days
                money = (strike - und.price) / und.price
                ret = q.bid / (strike - q.bid)
                strike_text = f'"{strike:,.2f}"' if strike >= 1000 else f"{strike:.2f}"
                oi = 400 + (n * 977 + int(strike)) % 9000
                print(f"{sym},{und.price:.2f},{exp:%Y-%m-%d},{dte},{strike_text},Put,"
                      f"{money:+.2%},{q.bid:g},{strike - q.bid:.2f},"
                      f"{(strike - q.bid - und.price) / und.price:+.2%},{oi // 7},\"{oi:,}\","
                      f"N/A,{abs(q.delta or 0):.6f},{ret:.1%},{ret * 365 / dte:.1%},N/A")
    print('"Downloaded from Barchart.com as of 11-24-2026 09:10am CST"')


asyncio.run(main())
