"""A loss breaker stays breached until someone resumes, and every pre-trade check while
it does asks the kill switch to halt again (issue 18): the halt is one CRITICAL line and
one audit row, the repeats are DEBUG lines with no audit row. Another request while
halted (an operator's own, another breaker) is still answered once."""

from __future__ import annotations

import logging
from datetime import date

from core.db.repos import AuditRepo
from core.models import Opportunity
from tests.core.risk.worlds import short_put, world

HISTORY = [{"date": "2026-11-20", "net_liquidation": 103_000.0},
           {"date": "2026-11-23", "net_liquidation": 103_000.0}]  # now ~$100k: -2.9% today
CANDIDATE = Opportunity("KO", date(2026, 12, 31), 64, None)


def halt_rows(engine) -> list[tuple[str, str]]:
    return sorted((e.severity, e.message) for e in AuditRepo(engine.db).list(kinds=["halt"]))


def kill_switch_lines(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "putdesk.kill_switch" and r.levelno == level]


async def test_a_breaker_breached_at_every_check_halts_once_and_says_so_once(desk, caplog):
    engine = await desk(world(equity_history=HISTORY,
                              positions=[short_put("KO", 66, "2026-12-31")]))
    reasons = set()
    with caplog.at_level(logging.DEBUG, logger="putdesk.kill_switch"):
        for price in (70.0, 69.0, 68.5, 70.0, 67.5, 69.5):
            engine.broker.set_price("KO", price)  # the equity, and so the reason, moves
            await engine.margin.check_account_health(fresh=True)  # as the health loop does
            decision = await engine.check(CANDIDATE)
            daily = next(c for c in decision.checks if c.name == "daily_loss")
            assert daily.status == "fail"
            reasons.add(daily.reason)
    assert engine.kill_switch.state.halted
    assert len(reasons) > 1  # not one repeated string: the breaker's name is the request
    assert len(kill_switch_lines(caplog, logging.CRITICAL)) == 1
    assert kill_switch_lines(caplog, logging.WARNING) == []
    assert len(kill_switch_lines(caplog, logging.DEBUG)) == 5
    assert [sev for sev, _ in halt_rows(engine)] == ["CRITICAL"]

    # The operator's own halt while halted: answered once (a line and a row), and once.
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="putdesk.kill_switch"):
        engine.halt("Operator: stop everything", "operator")
        engine.halt("Operator: stop everything", "operator")
        await engine.check(CANDIDATE)
    assert len(kill_switch_lines(caplog, logging.WARNING)) == 1
    assert halt_rows(engine)[-1] == (
        "WARNING", "Halt requested while already halted: Operator: stop everything")
    assert len(halt_rows(engine)) == 2

    # Resumed and breached again: a new halt, said again.
    caplog.clear()
    engine.resume("operator")
    with caplog.at_level(logging.DEBUG, logger="putdesk.kill_switch"):
        await engine.check(CANDIDATE)
        await engine.check(CANDIDATE)
    assert len(kill_switch_lines(caplog, logging.CRITICAL)) == 1
    assert [sev for sev, _ in halt_rows(engine)] == ["CRITICAL", "CRITICAL", "WARNING"]
