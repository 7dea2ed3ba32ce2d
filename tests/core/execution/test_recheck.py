"""The re-check before a staged order is sent (issue 18): the order does not count
against itself, staged orders queued after it do not count as working orders, and an
order for a contract already working at the broker, or claimed by another sender, is
the one real duplicate."""

from __future__ import annotations

from datetime import date, timedelta

from core.broker.base import OptionContract, OrderRequest, OrderType
from core.models import Opportunity

EXP = date(2026, 12, 31)


async def staged(engine, symbol: str, strike: float):
    decision = await engine.check(Opportunity(symbol, EXP, strike, None))
    assert decision.approved, decision.summary
    return await engine.stage(decision, "tester")


def dup(result) -> bool:
    """A send result's reason, or a decision's summary, names the duplicate check."""
    return "REJECTED by duplicate" in (getattr(result, "reason", "") or
                                       getattr(result, "summary", ""))


async def test_recheck_approves_staged_orders_and_flags_only_the_real_duplicate(desk):
    engine = await desk()
    first = await staged(engine, "KO", 66.0)
    second = await staged(engine, "JPM", 270.0)
    third = await staged(engine, "CAT", 450.0)
    # Another client sells CAT 450P now: a working order at the broker (resting above
    # the ask, so it does not fill).
    cat = OptionContract("CAT", EXP, 450.0)
    quote = await engine.broker.option_quote(cat)
    await engine.broker.place_order(OrderRequest(
        "SELL", 1, "putdesk-elsewhere0000", cat, order_type=OrderType.LIMIT,
        limit_price=round(quote.ask + 1, 2)))
    results = {row.id: result for row, result in await engine.execute(dry_run=True)}
    assert results[first.id].outcome == "DRY_RUN", results[first.id].reason
    assert results[second.id].outcome == "DRY_RUN", results[second.id].reason
    assert results[third.id].outcome == "REJECTED" and dup(results[third.id])
    assert "already working" in results[third.id].reason
    # Each says so in its row (a dry run leaves them staged).
    rows = {r.id: r for r in engine.staged.list()}
    assert rows[first.id].message.startswith("DRY RUN ok")
    assert rows[third.id].message.startswith("DRY RUN refused: No longer passes the risk "
                                             "checks: REJECTED by duplicate")


async def test_a_staged_twin_goes_once_even_in_one_batch(desk):
    """Two processes checked one candidate before either staged it: two staged orders
    for one contract. Re-checked in one concurrent batch, the one staged first goes and
    the later one is the duplicate (never both, never neither)."""
    engine = await desk()
    decision = await engine.check(Opportunity("KO", EXP, 66.0, None))
    assert decision.approved, decision.summary
    first = await engine.stage(decision, "console")
    engine.clock.advance(timedelta(seconds=1))
    twin = await engine.stage(decision, "other process")
    results = {row.id: result for row, result in await engine.execute(dry_run=True)}
    assert results[first.id].outcome == "DRY_RUN", results[first.id].reason
    assert dup(results[twin.id]), results[twin.id].reason
    # A new check sees both staged orders: no third.
    again = await engine.check(Opportunity("KO", EXP, 66.0, None))
    assert again.rejected_by is not None and again.rejected_by.name == "duplicate"


async def test_an_order_claimed_by_another_sender_is_a_duplicate_of_a_staged_twin(desk):
    engine = await desk()
    first = await staged(engine, "KO", 66.0)
    later = await staged(engine, "JPM", 270.0)
    # Another process claims the JPM order (SENDING): a staged KO is no duplicate of it,
    # but a JPM check now is.
    assert engine.staged.claim(later.id, engine.clock.now(), "Sending", "other [x]",
                               engine.clock.now())
    [(_row, result)] = await engine.execute([first.id], dry_run=True)
    assert result.outcome == "DRY_RUN", result.reason
    again = await engine.check(Opportunity("JPM", EXP, 270.0, None))
    assert again.rejected_by.name == "duplicate", again.summary
    assert "already working" in again.rejected_by.reason
