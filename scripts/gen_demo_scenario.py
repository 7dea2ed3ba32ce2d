"""Builds core/data/scenarios/demo.json: a simulated world (not market data).

    python scripts/gen_demo_scenario.py 148000 > core/data/scenarios/demo.json

The argument is the NLV the equity history is drawn around (the simulator's NLV
for the demo book).
"""
import json
import sys

IT, CS, CD, CST, HC, FIN, EN, IND, MAT, UT, RE, BM = ("Information Technology",
  "Communication Services", "Consumer Discretionary", "Consumer Staples", "Health Care",
  "Financials", "Energy", "Industrials", "Materials", "Utilities", "Real Estate", "Broad Market")
# symbol: (price, iv, iv_low, iv_high, earnings, sector)
U = {
 "AAPL": (231.40, 0.27, 0.17, 0.52, "2027-01-28", IT),
 "MSFT": (468.20, 0.24, 0.16, 0.41, "2027-01-27", IT),
 "NVDA": (171.90, 0.46, 0.33, 0.78, "2026-12-02", IT),
 "AMD": (208.50, 0.52, 0.36, 0.84, "2027-02-02", IT),
 "AVGO": (342.10, 0.41, 0.28, 0.70, "2026-12-10", IT),
 "CRM": (248.70, 0.36, 0.24, 0.63, "2026-12-02", IT),
 "ORCL": (196.30, 0.42, 0.25, 0.72, "2026-12-09", IT),
 "INTC": (34.80, 0.55, 0.35, 0.95, "2027-01-28", IT),
 "GOOGL": (262.40, 0.31, 0.21, 0.55, "2027-02-03", CS),
 "META": (612.50, 0.35, 0.24, 0.62, "2027-01-27", CS),
 "NFLX": (108.90, 0.34, 0.23, 0.66, "2027-01-19", CS),
 "DIS": (112.60, 0.28, 0.19, 0.50, "2027-02-04", CS),
 "AMZN": (221.80, 0.33, 0.22, 0.58, "2027-02-04", CD),
 "TSLA": (388.00, 0.58, 0.42, 0.98, "2027-01-27", CD),
 "HD": (381.20, 0.24, 0.17, 0.40, "2027-02-23", CD),
 "NKE": (67.40, 0.38, 0.24, 0.70, "2026-12-17", CD),
 "SBUX": (86.10, 0.33, 0.21, 0.58, "2027-01-27", CD),
 "WMT": (103.50, 0.22, 0.15, 0.38, "2027-02-18", CST),
 "COST": (918.00, 0.21, 0.14, 0.36, "2026-12-10", CST),
 "KO": (70.20, 0.17, 0.12, 0.29, "2027-02-10", CST),
 "PG": (151.30, 0.18, 0.12, 0.31, "2027-01-21", CST),
 "UNH": (332.60, 0.39, 0.20, 0.85, "2027-01-14", HC),
 "LLY": (1025.00, 0.34, 0.23, 0.60, "2027-02-05", HC),
 "JNJ": (193.40, 0.19, 0.13, 0.33, "2027-01-20", HC),
 "ABBV": (221.10, 0.26, 0.18, 0.45, "2027-01-29", HC),
 "PFE": (25.90, 0.27, 0.18, 0.46, "2027-02-03", HC),
 "JPM": (304.70, 0.24, 0.16, 0.45, "2027-01-13", FIN),
 "BAC": (52.30, 0.27, 0.18, 0.48, "2027-01-14", FIN),
 "GS": (781.00, 0.29, 0.19, 0.50, "2027-01-14", FIN),
 "V": (342.40, 0.21, 0.14, 0.36, "2027-01-28", FIN),
 "XOM": (117.60, 0.23, 0.17, 0.40, "2027-01-29", EN),
 "CVX": (154.80, 0.24, 0.17, 0.41, "2027-01-29", EN),
 "CAT": (571.30, 0.31, 0.21, 0.52, "2027-01-29", IND),
 "BA": (214.90, 0.36, 0.25, 0.60, "2027-01-27", IND),
 "LIN": (458.20, 0.19, 0.13, 0.32, "2027-02-05", MAT),
 "NEE": (82.70, 0.24, 0.17, 0.41, "2027-01-22", UT),
 "PLD": (118.40, 0.27, 0.19, 0.44, "2027-01-20", RE),
 "SPY": (668.30, 0.16, 0.10, 0.42, None, BM),
 "QQQ": (598.10, 0.20, 0.13, 0.46, None, BM),
 "IWM": (241.60, 0.23, 0.16, 0.45, None, BM),
 "XLE": (90.40, 0.24, 0.17, 0.42, None, EN),
}
und = {s: {"price": p, "iv": iv, "iv_52w_low": lo, "iv_52w_high": hi,
           **({"earnings": e} if e else {}), "sector": sec}
       for s, (p, iv, lo, hi, e, sec) in U.items()}
positions = [
 # under pressure: AMD fell from 231 to ~208.5 (-9.7%); the 200 put is close to the money
 {"symbol": "AMD", "right": "P", "strike": 200.0, "expiration": "2026-12-18", "quantity": -1,
  "avg_price": 2.45, "opened": "2026-11-03", "underlying_at_entry": 231.00, "roll_count": 0},
 {"symbol": "AAPL", "right": "P", "strike": 200.0, "expiration": "2026-12-18", "quantity": -2,
  "avg_price": 1.85, "opened": "2026-11-10", "underlying_at_entry": 235.00, "roll_count": 0},
 {"symbol": "JPM", "right": "P", "strike": 270.0, "expiration": "2027-01-08", "quantity": -1,
  "avg_price": 2.60, "opened": "2026-11-12", "underlying_at_entry": 301.20, "roll_count": 0},
 {"symbol": "XOM", "right": "P", "strike": 105.0, "expiration": "2026-12-18", "quantity": -2,
  "avg_price": 0.95, "opened": "2026-11-05", "underlying_at_entry": 119.30, "roll_count": 0},
 {"symbol": "WMT", "right": "P", "strike": 92.0, "expiration": "2027-01-15", "quantity": -3,
  "avg_price": 0.88, "opened": "2026-11-17", "underlying_at_entry": 104.10, "roll_count": 0},
 {"symbol": "SPY", "right": "P", "strike": 600.0, "expiration": "2027-01-15", "quantity": -1,
  "avg_price": 6.10, "opened": "2026-11-18", "underlying_at_entry": 671.00, "roll_count": 1},
]
doc = {
 "version": 1,
 "now": "2026-11-24T10:30:00-05:00",
 "account": {"id": "DU0000001", "cash": 142500.0},
 "vix": 18.5,
 "underlyings": und,
 "positions": positions,
 "stock_positions": [{"symbol": "INTC", "shares": 200, "avg_price": 38.0}],
 "equity_history": [],
 "option_quotes": {"AAPL 20261218 200 P": {"bid": 0.62, "ask": 0.68, "delta": -0.09, "iv": 0.33},
                   "WMT 20270115 92 P": {"bid": 0.58, "ask": 0.64}},
}
nlv = float(sys.argv[1]) if len(sys.argv) > 1 else 150000.0
days = ["2026-11-03","2026-11-04","2026-11-05","2026-11-06","2026-11-09","2026-11-10",
        "2026-11-11","2026-11-12","2026-11-13","2026-11-16","2026-11-17","2026-11-18",
        "2026-11-19","2026-11-20","2026-11-23"]
# a small climb to a peak on Nov 13, then a drawdown of about 2% into today
path = [0.991, 0.994, 0.998, 1.001, 1.004, 1.009, 1.012, 1.016, 1.021, 1.018, 1.013,
        1.010, 1.006, 1.003, 1.004]
doc["equity_history"] = [{"date": d, "net_liquidation": round(nlv * f, 2)}
                         for d, f in zip(days, path, strict=True)]
print(json.dumps(doc, indent=1))
