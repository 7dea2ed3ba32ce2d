"""The simulated soak, short form (issue 9, item 1).

Eight simulated weeks of the engine on the simulator (bench/soak.py): moving prices, VIX
12 -> 45 -> 20 with implied vols following, earnings jumps, gaps down, expiries and
assignments, the autopilot staging and sending every week, monitor cycles with rolls
approved and rejected, loss breakers and operator halts. Every order is checked at the
broker boundary when it is sent and the books after every step (see `Soak.inspect_order`
and `Soak.after_step`). Seeded: the same world and the same decisions every run.

The test fails on any broken invariant, and also when the soak stops exercising what it
is for (no orders, rejections, alerts, rolls, assignments or halts).
"""

from __future__ import annotations

from bench.soak import SoakConfig, SoakReport, run_soak


async def test_eight_simulated_weeks_keep_every_invariant(tmp_path) -> None:
    report: SoakReport = await run_soak(SoakConfig(weeks=8, seed=7, workdir=tmp_path))
    print("\n".join(report.lines()))  # shown with -s, and on failure

    assert report.ok, "invariants broken:\n" + "\n".join(
        str(v) for v in report.violations[:40])

    # It ran the whole time span, every trading day, and checked as it went.
    assert report.weeks == 8 and report.sessions >= 36 and report.steps >= 160
    assert report.checks["reconciliations"] == report.steps

    # ...and it exercised what a soak is for.
    assert report.orders["open"] >= 10 and report.fills["open"] >= 10
    assert report.orders["close"] >= 5 and report.fills["close"] >= 5
    assert report.orders["roll"] >= 1 and report.orders["stock"] >= 1
    assert report.checks["opening orders with a passing decision"] == report.orders["open"]
    assert sum(report.rejections.values()) >= 50
    assert any(k.startswith("screen ") for k in report.rejections)
    assert any(k.startswith("governor: ") for k in report.rejections)
    assert {"kill_switch", "vix_halt", "margin", "daily_loss"} <= set(report.failed_checks)
    assert sum(report.alerts.values()) >= 10
    assert report.alerts["alert:underlying_drop"] and report.alerts["alert:delta"]
    assert report.rolls["proposed"] >= 2 and report.rolls["rejected by the operator"] >= 1
    assert report.rolls["approved -> executed"] >= 1
    assert report.assignments["at expiry (simulator)"] >= 1
    assert report.assignments["detected"] >= 1
    breakers = ("Daily loss", "Weekly loss", "Max drawdown")
    assert any(k.startswith(breakers) for k in report.halts), report.halts
    assert any(k.startswith("Operator") for k in report.halts), report.halts
    assert report.resumes >= 2
    assert any(k.startswith("profit_target") for k in report.exits)
    assert report.world["gap market"] >= 1 and report.world["earnings down"] >= 1
