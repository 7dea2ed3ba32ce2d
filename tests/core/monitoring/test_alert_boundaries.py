"""Spec 4.2B's acceptance as it reads: a 5%+ drop from entry WARNs, 10%+ is CRITICAL,
exactly on the boundary included (issue 16), through the engine's monitor cycle."""

from __future__ import annotations

import logging

from tests.core.risk.worlds import UNDERLYINGS, world


def position(symbol: str, strike: float, entry: float) -> dict:
    return {"symbol": symbol, "right": "P", "strike": strike, "expiration": "2026-12-18",
            "quantity": -1, "avg_price": 1.0, "opened": "2026-11-10",
            "underlying_at_entry": entry, "roll_count": 0}


def drop_alerts(views) -> dict[str, str | None]:
    return {v.symbol: next((a.severity for a in v.alerts if a.kind == "underlying_drop"),
                           None) for v in views}


async def test_exact_5_and_10_percent_drops_alert_at_their_level(desk, caplog):
    data = world(positions=[position("KO", 60, 80.0),     # 76 now: exactly -5%
                            position("XOM", 90, 100.0),   # moved to 90: exactly -10%
                            position("AMD", 100, 133.0),  # 119.70: -10%, 0.0999... in floats
                            position("JPM", 240, 315.0)])  # 300 now: -4.76%
    engine = await desk(data)
    engine.broker.faults.missing_greeks = {"*"}
    engine.broker.set_price("XOM", 90.0)
    engine.broker.set_price("AMD", 119.7)
    assert UNDERLYINGS["KO"]["price"] == 76.0 and UNDERLYINGS["JPM"]["price"] == 300.0
    with caplog.at_level(logging.WARNING):
        views = await engine.monitor_cycle(exits=False)
    assert drop_alerts(views) == {"KO": "WARNING", "XOM": "CRITICAL", "AMD": "CRITICAL",
                                  "JPM": None}
    assert "Underlying KO down 5.0% from entry ($80.00 → $76.00)" in caplog.text
    assert "Underlying XOM down 10.0% — review position ($100.00 → $90.00)" in caplog.text


async def test_a_drop_just_under_the_limit_never_reads_as_the_limit(desk, caplog):
    engine = await desk(world(positions=[position("KO", 60, 79.99)]))  # -4.99%
    engine.broker.faults.missing_greeks = {"*"}
    views = await engine.monitor_cycle(exits=False)
    assert drop_alerts(views) == {"KO": None}
    engine.broker.set_price("KO", 71.98)  # -10.01%: CRITICAL, printed past the limit
    views = await engine.monitor_cycle(exits=False)
    critical = next(a for a in views[0].alerts if a.kind == "underlying_drop")
    assert critical.severity == "CRITICAL"
    assert critical.message.startswith("Underlying KO down 10.01% — review position")
