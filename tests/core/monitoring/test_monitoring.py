"""Position monitoring, exits, rolls and assignments on the simulator (spec 4.2A, 4.2B,
4.3A, 5.3, 5.4) — every acceptance criterion and named test."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import date, timedelta

import pytest

from core.broker.base import OptionContract
from core.db.repos import PositionSnapshotRepo
from core.monitoring.assignments import UNEXPLAINED_GROWTH_GRACE
from tests.core.risk.worlds import UNDERLYINGS, world

AMD_OLD = "AMD 20261204 200 P"


def position(symbol, strike, expiration="2026-12-18", quantity=-1, avg_price=1.00,
             entry=None, roll_count=0, opened="2026-11-10"):
    return {"symbol": symbol, "right": "P", "strike": strike, "expiration": expiration,
            "quantity": quantity, "avg_price": avg_price, "opened": opened,
            "underlying_at_entry": entry or UNDERLYINGS[symbol]["price"],
            "roll_count": roll_count}


def quote(bid, ask, delta=None, iv=0.3):
    return {"bid": bid, "ask": ask, "delta": delta, "iv": iv}




def alerts_of(views, symbol):
    return [(a.kind, a.severity) for v in views if v.symbol == symbol for a in v.alerts]


# --- 4.2A delta ----------------------------------------------------------------------


async def test_delta_over_030_warns_and_over_050_is_critical_only(desk, caplog):
    data = world(positions=[position("KO", 66), position("JNJ", 150)],
                 option_quotes={"KO 20261218 66 P": quote(0.9, 1.0, -0.35),
                                "JNJ 20261218 150 P": quote(1.9, 2.0, -0.62)})
    engine = await desk(data)
    with caplog.at_level(logging.WARNING):
        views = await engine.monitor_cycle(exits=False)
    assert alerts_of(views, "KO") == [("delta", "WARNING")]
    assert alerts_of(views, "JNJ") == [("delta", "CRITICAL")]  # not CRITICAL plus WARNING
    assert "Delta elevated: KO delta=-0.35 (>0.30, thesis weakening)" in caplog.text
    assert "Delta breach: JNJ delta=-0.62 (>0.50, deep ITM risk)" in caplog.text
    assert views[0].symbol == "JNJ"  # sorted by severity


async def test_no_delta_alert_when_greeks_are_missing(desk):
    data = world(positions=[position("KO", 66)],
                 option_quotes={"KO 20261218 66 P": quote(0.9, 1.0, None, None)})
    engine = await desk(data)
    engine.broker.faults.missing_greeks = {"KO"}
    views = await engine.monitor_cycle(exits=False)
    assert views[0].delta is None and alerts_of(views, "KO") == []


# --- 4.2B underlying drop --------------------------------------------------------------


async def test_underlying_drop_5pct_warns_10pct_is_critical(desk, caplog):
    data = world(positions=[position("KO", 60, entry=80.3),   # 76 now: -5.4%
                            position("XOM", 100, entry=133.0)])  # 118 now: -11.3%
    engine = await desk(data)
    engine.broker.faults.missing_greeks = {"*"}  # works without greeks
    with caplog.at_level(logging.WARNING):
        views = await engine.monitor_cycle(exits=False)
    assert alerts_of(views, "KO") == [("underlying_drop", "WARNING")]
    assert alerts_of(views, "XOM") == [("underlying_drop", "CRITICAL")]
    assert "Underlying KO down 5.4% from entry ($80.30 → $76.00)" in caplog.text
    assert "Underlying XOM down 11.3% — review position" in caplog.text


async def test_no_drop_alert_without_stock_data(desk, monkeypatch):
    engine = await desk(world(positions=[position("KO", 60, entry=90.0)]))

    async def no_price(symbol):
        return None

    monkeypatch.setattr(engine.broker, "underlying_price", no_price)
    views = await engine.monitor_cycle(exits=False)
    assert alerts_of(views, "KO") == []


async def test_an_alert_is_notified_once_and_again_only_when_it_escalates(desk):
    engine = await desk(world(positions=[position("KO", 66)],
                              option_quotes={"KO 20261218 66 P": quote(0.9, 1.0, -0.35)}))
    await engine.monitor_cycle(exits=False)
    await engine.monitor_cycle(exits=False)
    assert len(engine.audit.list(kinds=["alert"])) == 1
    engine.broker._overrides[next(iter(engine.broker._overrides))] = type(
        next(iter(engine.broker._overrides.values())))(bid=1.9, ask=2.0, delta=-0.55)
    await engine.monitor_cycle(exits=False)
    assert [e.severity for e in engine.audit.list(kinds=["alert"])] == ["CRITICAL", "WARNING"]


# --- 4.3A snapshots ------------------------------------------------------------------


async def test_snapshots_upsert_with_the_real_trade(desk, caplog):
    engine = await desk(world(positions=[position("KO", 66)]))
    with caplog.at_level(logging.INFO):
        await engine.monitor_cycle(exits=False)
        await engine.monitor_cycle(exits=False)
    snap = PositionSnapshotRepo(engine.db).get("KO 20261218 66 P")
    trade = engine.trades.open_trades()[0]
    assert snap.trade_id == trade.id
    assert snap.expiration == date(2026, 12, 18) and snap.entry_date == date(2026, 11, 10)
    with engine.db.session() as session:
        from sqlmodel import select

        from core.db.tables import PositionSnapshot
        assert len(session.exec(select(PositionSnapshot)).all()) == 1
    assert caplog.text.count("Position snapshots saved: 1 of 1") == 2


# --- exits ---------------------------------------------------------------------------


async def test_profit_target_closes_the_position_and_the_trade(desk):
    engine = await desk(world(positions=[position("KO", 66, avg_price=1.00)],
                              option_quotes={"KO 20261218 66 P": quote(0.40, 0.44, -0.1)}))
    await engine.monitor_cycle()
    await engine.exits.settled()
    trade = engine.trades.all()[0]
    assert trade.status == "CLOSED" and trade.exit_reason.startswith("profit_target")
    assert trade.realized_pnl > 0
    assert not [p for p in await engine.broker.positions() if p.sec_type == "OPT"]


async def test_stop_loss_closes(desk):
    engine = await desk(world(positions=[position("KO", 66, avg_price=1.00)],
                              option_quotes={"KO 20261218 66 P": quote(3.00, 3.10, -0.45)}))
    await engine.monitor_cycle()
    await engine.exits.settled()
    trade = engine.trades.all()[0]
    assert trade.status == "CLOSED" and trade.exit_reason.startswith("stop_loss")


async def test_time_exit_closes(desk):
    engine = await desk(world(positions=[position("KO", 66, "2026-11-25")],
                              option_quotes={"KO 20261125 66 P": quote(0.90, 0.95, -0.1)}))
    await engine.monitor_cycle()
    await engine.exits.settled()
    assert engine.trades.all()[0].exit_reason.startswith("time_exit")


async def test_no_automatic_close_while_halted(desk):
    engine = await desk(world(positions=[position("KO", 66, avg_price=1.00)],
                              option_quotes={"KO 20261218 66 P": quote(0.40, 0.44, -0.1)}))
    engine.halt("stepping away")
    await engine.monitor_cycle()
    await engine.exits.settled()
    assert engine.trades.all()[0].status == "OPEN"


async def test_exit_all_closes_every_put(desk):
    engine = await desk(world(positions=[position("KO", 68), position("XOM", 110)]))
    results = await engine.exits.exit_all("tester")
    assert all(r.outcome == "FILLED" for _v, r in results), [r.reason for _v, r in results]
    assert {t.status for t in engine.trades.all()} == {"CLOSED"}


# --- 5.3 rolls: the three named tests and the operator's decision ------------------------


def pressured_amd(**changes):
    """AMD 200P expiring Dec 4, sold for 1.20, now 2.95/3.10: a 150% loss."""
    data = world(positions=[position("AMD", 200, "2026-12-04", avg_price=1.20, entry=235.0,
                                     roll_count=changes.pop("roll_count", 0))],
                 option_quotes={AMD_OLD: quote(2.95, 3.10, -0.35, 0.5)})
    data["underlyings"]["AMD"].update(changes)
    return data


async def test_at_150pct_loss_with_a_viable_target_a_roll_is_offered(desk):
    engine = await desk(pressured_amd())
    await engine.monitor_cycle()
    await engine.exits.settled()
    [proposal] = engine.rolls.find(("PENDING",))
    assert proposal.net_credit > 0 and proposal.new_premium - proposal.buyback_cost == \
        pytest.approx(proposal.net_credit, abs=0.011)
    assert proposal.new_expiration > date(2026, 12, 4)
    assert proposal.new_strike <= 200 and proposal.margin_change is not None
    assert engine.trades.all()[0].status == "OPEN"  # waits for the operator


async def test_at_150pct_loss_already_rolled_twice_closes_without_a_roll(desk):
    engine = await desk(pressured_amd(roll_count=2))
    await engine.monitor_cycle()
    await engine.exits.settled()
    assert engine.rolls.find() == []
    trade = engine.trades.all()[0]
    assert trade.status == "CLOSED" and "already rolled 2 times" in trade.exit_reason


async def test_roll_target_with_earnings_in_its_dte_is_rejected_and_closed(desk):
    engine = await desk(pressured_amd(earnings="2026-12-08"))
    await engine.monitor_cycle()
    await engine.exits.settled()
    assert engine.rolls.find() == []
    trade = engine.trades.all()[0]
    assert trade.status == "CLOSED" and "earnings on 2026-12-08" in trade.exit_reason


async def test_approving_a_roll_executes_one_combo_and_records_the_lineage(desk):
    engine = await desk(pressured_amd())
    await engine.monitor_cycle()
    await engine.exits.settled()
    [proposal] = engine.rolls.find(("PENDING",))
    done = await engine.roll_manager.approve(proposal.id, "tester")
    assert done.status == "EXECUTED" and "one combo" in done.result
    old, new = sorted(engine.trades.all(), key=lambda t: t.entry_time)
    assert old.status == "CLOSED" and old.exit_reason == "rolled"
    assert new.roll_count == 1 and new.rolled_from_trade_id == old.id
    held = [p.contract for p in await engine.broker.positions() if p.sec_type == "OPT"]
    assert [(c.strike, c.expiration) for c in held] == [(done.new_strike,
                                                         done.new_expiration)]
    with pytest.raises(ValueError, match="not PENDING"):
        await engine.roll_manager.approve(proposal.id, "tester")


async def test_rejecting_a_roll_closes_when_the_rule_still_says_so(desk):
    engine = await desk(pressured_amd())
    await engine.monitor_cycle()
    await engine.exits.settled()
    [proposal] = engine.rolls.find(("PENDING",))
    await engine.roll_manager.reject(proposal.id, "tester")
    assert engine.rolls.get(proposal.id).status == "REJECTED"
    trade = engine.trades.all()[0]
    assert trade.status == "CLOSED" and "the operator rejected the roll" in trade.exit_reason


async def test_a_broker_without_combos_rolls_close_then_open(desk):
    engine = await desk(pressured_amd())
    await engine.monitor_cycle()
    await engine.exits.settled()
    [proposal] = engine.rolls.find(("PENDING",))
    engine.broker.faults.reject_combos = True
    done = await engine.roll_manager.approve(proposal.id, "tester")
    assert done.status == "EXECUTED" and "close-then-open" in done.result
    assert sorted(t.status for t in engine.trades.all()) == ["CLOSED", "OPEN"]


# --- 5.4 assignment --------------------------------------------------------------------


KO = {"symbol": "KO", "shares": 100, "avg_price": 70.0}  # bought outright by the operator


def ko_put(strike, expiration="2026-12-18"):
    return OptionContract("KO", date.fromisoformat(expiration), float(strike))


async def settled(engine):
    """Until the monitor cycles that the broker's position events started have run (a
    trading desk's engine starts one; the tests' engine, not started, does not)."""
    while engine._tasks:
        await asyncio.gather(*list(engine._tasks), return_exceptions=True)


async def looked(engine):
    """The book looked at after a change, as the desk does on the broker's event."""
    await settled(engine)
    await engine.monitor_cycle(exits=False)


def flagged(engine):
    """(symbol, assigned shares, shares held) of every assignment raised so far."""
    return [(e.symbol, json.loads(e.data or "{}")["shares"], json.loads(e.data or "{}")["held"])
            for e in engine.audit.list(kinds=["assignment"])]


async def test_a_put_assigned_early_is_detected_once(desk, caplog):
    engine = await desk(world(positions=[position("KO", 66)]))
    await engine.monitor_cycle(exits=False)
    with caplog.at_level(logging.CRITICAL):
        engine.broker.assign_early(ko_put(66), 1)  # the book-changed event starts a cycle
        await looked(engine)
    assert flagged(engine) == [("KO", 100, 100)]
    assert "POSSIBLE ASSIGNMENT DETECTED: KO — 100 shares found in account" in caplog.text
    trade = engine.trades.all()[0]
    assert trade.assignment_detected and trade.assignment_date is not None
    assert trade.status == "ASSIGNED"
    again = await engine.assignments.check_for_assignments()
    assert again.detected == [] and again.already_known == ["KO"]
    assert len(flagged(engine)) == 1


async def test_shares_bought_outright_beside_an_open_put_are_no_assignment_until_it_is(
        desk, caplog):
    """The operator's 100 KO shares with a KO put open: no flag and no sale, however many
    checks run; the put's assignment at expiration on top (100 -> 200 shares) is one,
    and only its 100 shares are sold."""
    engine = await desk(world(positions=[position("KO", 80, "2026-11-27")],
                              stock_positions=[KO]),
                        TIME_EXIT_DTE="0", ASSIGNMENT_RESPONSE_MODE="SELL_IMMEDIATELY")
    with caplog.at_level(logging.INFO):
        await engine.monitor_cycle(exits=False)
        report = await engine.assignments.check_for_assignments()
    assert "POSSIBLE ASSIGNMENT" not in caplog.text
    assert report.detected == [] and report.stock_not_assigned == ["KO 100 shares"]
    [trade] = engine.trades.all()
    assert trade.status == "OPEN" and not trade.assignment_detected
    assert engine.staged.list(None, ("stock",)) == []
    assert engine.audit.list(kinds=["assignment", "assignment_response"]) == []

    engine.clock.advance(timedelta(days=3, hours=6))  # past Friday's close: KO 76 < 80
    caplog.clear()
    with caplog.at_level(logging.CRITICAL):
        engine.broker.process_time()
        await settled(engine)
        await engine.monitor_cycle(exits=False)
    assert [p.quantity for p in await engine.broker.positions() if p.symbol == "KO"] == [200]
    assert ("POSSIBLE ASSIGNMENT DETECTED: KO — 100 shares found in account (200 held, 100 "
            "before)") in caplog.text
    assert flagged(engine) == [("KO", 100, 200)]
    [trade] = engine.trades.all()
    assert trade.status == "ASSIGNED" and trade.assignment_detected
    [sale] = engine.staged.list(None, ("stock",))  # rests until Monday's open
    assert sale.action == "SELL" and sale.contracts == 100


async def test_a_partial_early_assignment_sells_only_its_shares(desk):
    engine = await desk(world(positions=[position("KO", 80, quantity=-2)], stock_positions=[KO]),
                        ASSIGNMENT_RESPONSE_MODE="SELL_IMMEDIATELY")
    await engine.monitor_cycle(exits=False)
    assert flagged(engine) == []
    engine.broker.assign_early(ko_put(80), 1)
    await looked(engine)
    assert flagged(engine) == [("KO", 100, 200)]
    # The assigned contract is a trade of its own; the other stays open, unflagged.
    trades = sorted(engine.trades.all(), key=lambda t: t.status)
    assert [(t.status, t.contracts, t.assignment_detected) for t in trades] == [
        ("ASSIGNED", 1, True), ("OPEN", 1, False)]
    held = {p.sec_type: p.quantity for p in await engine.broker.positions() if p.symbol == "KO"}
    assert held == {"OPT": -1, "STK": 100}  # the operator's shares stay
    await looked(engine)  # nothing new: no second flag
    assert flagged(engine) == [("KO", 100, 200)]


async def test_the_rest_of_a_partly_assigned_put_is_seen_when_it_is_assigned(desk):
    """Two contracts assigned one at a time: each assignment is flagged and its 100
    shares sold (before, the trade was flagged at the first and the second went unseen)."""
    engine = await desk(world(positions=[position("KO", 80, quantity=-2)]),
                        ASSIGNMENT_RESPONSE_MODE="SELL_IMMEDIATELY")
    await engine.monitor_cycle(exits=False)
    engine.broker.assign_early(ko_put(80), 1)
    await looked(engine)  # flagged, and its 100 shares sold (the market is open)
    await looked(engine)  # as the desk does on the sale's fill: the shares counted again
    engine.broker.assign_early(ko_put(80), 1)
    await looked(engine)
    assert [shares for _s, shares, _held in flagged(engine)] == [100, 100]
    assert sorted((t.status, t.contracts) for t in engine.trades.all()) == [
        ("ASSIGNED", 1), ("ASSIGNED", 1)]
    sales = engine.staged.list(None, ("stock",))
    assert [s.contracts for s in sales] == [100, 100]


async def test_shares_bought_while_the_put_is_held_are_the_operators(desk, caplog):
    """Shares that grow while the put stays are the operator's once the grace passes: the
    put expiring worthless later is no assignment of them."""
    from core.broker.base import OrderRequest, OrderType

    engine = await desk(world(positions=[position("KO", 66, "2026-11-27")]), TIME_EXIT_DTE="0")
    await engine.monitor_cycle(exits=False)
    await engine.broker.place_order(OrderRequest("BUY", 100, "operator", stock="KO",
                                                 order_type=OrderType.MARKET))
    await settled(engine)
    await engine.assignments.check_for_assignments()
    engine.clock.advance(UNEXPLAINED_GROWTH_GRACE)
    await engine.assignments.check_for_assignments()
    engine.clock.advance(timedelta(days=3, hours=6))  # the 66 put expires worthless
    with caplog.at_level(logging.INFO):
        engine.broker.process_time()
        await settled(engine)
        await engine.monitor_cycle(exits=False)
    assert "POSSIBLE ASSIGNMENT" not in caplog.text and flagged(engine) == []
    assert [t.status for t in engine.trades.all()] == ["EXPIRED"]
    assert [p.quantity for p in await engine.broker.positions()] == [100]


async def test_shares_that_show_before_the_put_leaves_are_still_an_assignment(desk,
                                                                              monkeypatch):
    """IBKR sends the stock and the option as separate position updates: a check between
    them sees the shares with the put still held; the next one, without it, flags."""
    from core.broker.base import Position

    engine = await desk(world(positions=[position("KO", 66)]))
    await engine.monitor_cycle(exits=False)
    real = engine.broker.positions

    async def option_update_late():
        return [*await real(), Position("KO", "OPT", -1, 100.0, ko_put(66), "DU0000009")]

    engine.broker.assign_early(ko_put(66), 1)
    monkeypatch.setattr(engine.broker, "positions", option_update_late)
    await settled(engine)
    await engine.monitor_cycle(exits=False)
    assert flagged(engine) == []
    monkeypatch.setattr(engine.broker, "positions", real)
    await engine.monitor_cycle(exits=False)
    assert flagged(engine) == [("KO", 100, 100)]


async def test_two_processes_seeing_one_assignment_flag_it_once(tmp_path):
    """Both processes on the account see the shares at once: one alert, one sale."""
    from tests.core.risk.worlds import write
    from tests.factories import make_settings, sim_engine

    settings = make_settings(tmp_path, ASSIGNMENT_RESPONSE_MODE="SELL_IMMEDIATELY")
    path = write(tmp_path, world(positions=[position("KO", 66)]))
    a = sim_engine(settings, path)
    b = sim_engine(settings, path, broker=a.broker)
    for e in (a, b):
        await e.open()
    await a.broker.connect()
    try:
        await a.assignments.check_for_assignments()
        a.broker.assign_early(ko_put(66), 1)
        reports = await asyncio.gather(a.assignments.check_for_assignments(),
                                       b.assignments.check_for_assignments())
        await settled(a)
        await settled(b)
        assert sum(len(r.detected) for r in reports) == 1
        assert flagged(a) == [("KO", 100, 100)]
        assert len(a.staged.list(None, ("stock",))) == 1
    finally:
        for e in (a, b):
            await e.stop()


async def test_a_sale_held_back_by_a_halt_goes_out_when_trading_resumes(desk):
    """SELL_IMMEDIATELY while trading is halted sends nothing; once resumed, the next
    check sells the assigned shares, and only those."""
    engine = await desk(world(positions=[position("KO", 80)], stock_positions=[KO]),
                        ASSIGNMENT_RESPONSE_MODE="SELL_IMMEDIATELY")
    await engine.monitor_cycle(exits=False)
    engine.halt("news review")
    engine.broker.assign_early(ko_put(80), 1)
    await settled(engine)
    await engine.monitor_cycle(exits=False)
    assert flagged(engine) == [("KO", 100, 200)]
    assert engine.staged.list(None, ("stock",)) == []
    [response] = [e.message for e in engine.audit.list(kinds=["assignment_response"])]
    assert "not sent — trading is halted; the 100 assigned shares are sold when trading " \
           "resumes" in response
    engine.resume()
    await engine.monitor_cycle(exits=False)
    [sale] = engine.staged.list(None, ("stock",))
    assert sale.status == "FILLED" and sale.contracts == 100
    assert len(engine.audit.list(kinds=["assignment_response"])) == 2  # held back, sold
    assert [p.quantity for p in await engine.broker.positions() if p.symbol == "KO"] == [100]
    await engine.monitor_cycle(exits=False)  # sent once
    assert len(engine.staged.list(None, ("stock",))) == 1
    assert flagged(engine) == [("KO", 100, 200)]


async def test_stock_without_a_put_trade_is_not_flagged(desk):
    engine = await desk(world(stock_positions=[{"symbol": "DUK", "shares": 200,
                                                "avg_price": 110.0}]))
    report = await engine.assignments.check_for_assignments()
    assert report.detected == [] and report.stock_without_trades == ["DUK 200 shares"]


async def test_expiry_assignment_in_the_simulator_is_detected(desk, caplog):
    engine = await desk(world(positions=[position("KO", 80, "2026-11-27")]),
                        TIME_EXIT_DTE="0")
    engine.clock.advance(timedelta(days=3, hours=6))  # past Friday's close
    with caplog.at_level(logging.CRITICAL):
        engine.broker.process_time()
        await engine.monitor_cycle(exits=False)
    assert "POSSIBLE ASSIGNMENT DETECTED: KO — 100 shares found in account" in caplog.text
    trade = engine.trades.all()[0]
    assert trade.status == "ASSIGNED" and trade.assignment_detected


@pytest.mark.parametrize(("mode", "expect"), [
    ("SELL_IMMEDIATELY", "sold 100 shares at $75.99"),
    ("HOLD", "holding 100 shares"),
    ("COVERED_CALL", "covered-call suggestion — sell 1 call(s) around 80"),
])
async def test_assignment_response_modes(desk, mode, expect):
    engine = await desk(world(positions=[position("KO", 66)]), ASSIGNMENT_RESPONSE_MODE=mode)
    await engine.monitor_cycle(exits=False)  # the desk's first look counts the shares
    engine.broker.assign_early(ko_put(66), 1)
    await looked(engine)
    [response] = [e.message for e in engine.audit.list(kinds=["assignment_response"])]
    assert expect in response  # one audit row a response
    stock = [p for p in await engine.broker.positions() if p.sec_type == "STK"]
    assert (stock == []) == (mode == "SELL_IMMEDIATELY")


async def test_a_put_sold_while_assigned_shares_are_for_sale_is_no_new_assignment(desk, caplog):
    """After the close the market sale of assigned shares rests; a put sold on the symbol
    meanwhile did not put the shares there: no second POSSIBLE ASSIGNMENT, no second
    sale (which, once the first filled, would sell stock the account no longer holds)."""
    from core.db.tables import Trade

    engine = await desk(world(positions=[position("KO", 66)]),
                        ASSIGNMENT_RESPONSE_MODE="SELL_IMMEDIATELY")
    await engine.monitor_cycle(exits=False)  # the desk's first look counts the shares
    engine.clock.advance(timedelta(hours=7))  # 17:30 ET: the sale waits for the open
    engine.broker.assign_early(ko_put(66), 1)
    await looked(engine)
    assert flagged(engine) == [("KO", 100, 100)]
    [sale] = engine.staged.list(("WORKING",), ("stock",))
    old = engine.trades.all()[0]
    engine.trades.add(Trade(**old.model_dump(exclude={"id", "assignment_detected",
                                                       "assignment_date", "status",
                                                       "exit_time", "exit_reason"})
                            | {"strike": 60.0}))
    caplog.clear()
    with caplog.at_level(logging.CRITICAL):
        again = await engine.assignments.check_for_assignments()
    assert again.detected == [] and again.already_known == ["KO"]
    assert "POSSIBLE ASSIGNMENT" not in caplog.text
    assert [r.id for r in engine.staged.list(None, ("stock",))] == [sale.id]


async def test_an_assigned_stock_sale_is_not_sent_for_shares_no_longer_held(desk):
    """The shares are read again right before the sale: none held, nothing sent."""
    from core.monitoring.assignments import AssignmentEvent

    engine = await desk(world(positions=[position("KO", 66)]),
                        ASSIGNMENT_RESPONSE_MODE="SELL_IMMEDIATELY")
    text = await engine.assignments.handle_assignment(
        AssignmentEvent("KO", 100, (), "POSSIBLE ASSIGNMENT DETECTED: KO"))
    assert "not sent — the account holds 0 KO shares now, not 100" in text
    assert [p for p in await engine.broker.positions() if p.sec_type == "STK"] == []
    [row] = engine.staged.list(None, ("stock",))
    assert row.status == "REJECTED" and "holds 0 KO shares" in (row.message or "")


async def test_two_processes_splitting_one_partial_assignment_split_it_once(desk):
    """The split is claimed in one statement: a second process holding the same trade as
    it read it finds the contracts changed and splits nothing."""
    engine = await desk(world(positions=[position("KO", 80, quantity=-3)]))
    [trade] = engine.trades.all()
    mine, theirs = trade.model_copy(), trade.model_copy()
    now = engine.clock.now()
    part = engine.trades.split_assignment(mine, 1, now)
    assert part is not None and part.contracts == 1 and mine.contracts == 2
    assert engine.trades.split_assignment(theirs, 1, now) is None
    assert sorted((t.status, t.contracts) for t in engine.trades.all()) == [
        ("ASSIGNED", 1), ("OPEN", 2)]



async def test_a_first_check_without_an_earlier_count_flags_but_never_sells(desk):
    """No earlier share count (a new account, the first start): the shares cannot be told
    from the account's own, so the assignment is flagged for review and nothing sold."""
    engine = await desk(world(positions=[position("KO", 66)], stock_positions=[KO]),
                        ASSIGNMENT_RESPONSE_MODE="SELL_IMMEDIATELY")
    engine.broker.assign_early(ko_put(66), 1)
    await looked(engine)  # the account's first check
    assert flagged(engine) == [("KO", 100, 200)]
    assert engine.staged.list(None, ("stock",)) == []
    [response] = [e.message for e in engine.audit.list(kinds=["assignment_response"])]
    assert "not sent — no share count from an earlier check" in response


async def test_a_second_assignment_while_the_first_sale_works_is_flagged(desk):
    """After the close the first sale rests; the second contract's assignment is still
    flagged and alerted (its shares named for review), not taken for the first."""
    engine = await desk(world(positions=[position("KO", 80, quantity=-2)]),
                        ASSIGNMENT_RESPONSE_MODE="SELL_IMMEDIATELY")
    await engine.monitor_cycle(exits=False)
    engine.clock.advance(timedelta(hours=7))  # 17:30 ET: a sale waits for the open
    engine.broker.assign_early(ko_put(80), 1)
    await looked(engine)
    [sale] = engine.staged.list(("WORKING",), ("stock",))
    engine.broker.assign_early(ko_put(80), 1)
    await looked(engine)
    assert [shares for _s, shares, _held in flagged(engine)] == [100, 100]
    responses = [e.message for e in engine.audit.list(kinds=["assignment_response"])]
    assert any("a sale of earlier assigned shares still works" in r for r in responses)
    assert [r.id for r in engine.staged.list(None, ("stock",))] == [sale.id]
    assert sorted(t.status for t in engine.trades.all()) == ["ASSIGNED", "ASSIGNED"]


async def test_trades_on_one_contract_are_assigned_by_quantity(desk):
    """Two trades on the same put (1 and 2 contracts), 2 of the 3 assigned: the book of
    trades still open is what the broker holds (before, a trade whose contracts all left
    stayed OPEN because its contract was still held by the other)."""
    from core.db.tables import Trade

    engine = await desk(world(positions=[position("KO", 80, quantity=-3)]))
    [t] = engine.trades.all()
    t.contracts = 1
    engine.trades.update(t)
    engine.trades.add(Trade(**t.model_dump(exclude={"id", "order_ref", "perm_id"})
                            | {"contracts": 2}))
    await engine.monitor_cycle(exits=False)
    engine.broker.assign_early(ko_put(80), 2)  # 3 -> 1 held
    await looked(engine)
    open_contracts = sum(t.contracts for t in engine.trades.all() if t.status == "OPEN")
    held = -sum(p.quantity for p in await engine.broker.positions() if p.sec_type == "OPT")
    assert open_contracts == held == 1
    assert [shares for _s, shares, _held in flagged(engine)] == [200]


async def test_shares_bought_after_an_expired_puts_delivery_are_the_operators(desk):
    """A put settled as expired worthless could still have been assigned, and its shares
    would be in the account by the next session's open. Round lots the operator buys
    later (here Monday 11:30 after a Friday expiry) are not taken for it, nor sold."""
    from core.broker.base import OrderRequest, OrderType

    engine = await desk(world(positions=[position("KO", 66, "2026-11-27")]),
                        TIME_EXIT_DTE="0", ASSIGNMENT_RESPONSE_MODE="SELL_IMMEDIATELY")
    await engine.monitor_cycle(exits=False)
    engine.clock.advance(timedelta(days=3, hours=6))  # KO 76 > 66: expires worthless
    engine.broker.process_time()
    await settled(engine)
    await engine.monitor_cycle(exits=False)
    assert [t.status for t in engine.trades.all()] == ["EXPIRED"]
    engine.clock.advance(timedelta(days=3, hours=-5))  # Monday 11:30 ET
    await engine.broker.place_order(OrderRequest("BUY", 100, "operator", stock="KO",
                                                 order_type=OrderType.MARKET))
    await looked(engine)
    assert flagged(engine) == []
    assert engine.staged.list(None, ("stock",)) == []
    assert [p.quantity for p in await engine.broker.positions() if p.symbol == "KO"] == [100]
