"""Positions and Rolls screens: alerts, live updates that keep the cursor, a pending roll,
approve and reject through the keys."""

from __future__ import annotations

from datetime import timedelta

from console.app import PutDeskApp
from core.monitoring.positions import MARGIN_REUSE_SECONDS
from screens.confirm import ConfirmScreen
from screens.positions import PositionDetail, PositionsScreen
from screens.rolls import RollsScreen
from tests.core.monitoring.test_monitoring import position, pressured_amd, quote
from tests.core.risk.worlds import world, write
from tests.factories import make_settings, sim_engine, wait_engine_started

SIZE = (120, 40)
FAST = {"ORDER_REPRICE_INTERVAL_SECONDS": "0.05", "ORDER_TIMEOUT_SECONDS": "5"}


def alerting_world(tmp_path):
    data = world(positions=[position("KO", 66), position("JNJ", 150),
                            position("XOM", 100, entry=133.0), position("DUK", 105)],
                 option_quotes={"KO 20261218 66 P": quote(0.9, 1.0, -0.35),
                                "JNJ 20261218 150 P": quote(1.9, 2.0, -0.62)})
    return write(tmp_path, data, "alerting.json")


def make_app(tmp_path, scenario) -> PutDeskApp:
    settings = make_settings(tmp_path, **FAST)
    return PutDeskApp(settings, engine_factory=lambda: sim_engine(settings, scenario),
                      install_signal_handlers=False, actor=lambda via: f"{via} tester")


async def on_positions(pilot) -> None:
    await wait_engine_started(pilot)
    await pilot.press("f3")
    for _ in range(20):
        await pilot.pause()


async def test_alerts_sorted_by_severity_and_updates_keep_the_cursor(tmp_path):
    app = make_app(tmp_path, alerting_world(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await on_positions(pilot)
        screen = app.screen
        assert isinstance(screen, PositionsScreen)
        table = screen.query_one("#positions")
        order = table.row_keys
        assert order[:2] == ["JNJ 20261218 150 P", "XOM 20261218 100 P"]  # CRITICAL first
        await pilot.press("down", "down")
        before = table.cursor_row
        app.engine.broker.set_price("DUK", 100.0)  # the book moves
        await app.engine.monitor_cycle(exits=False)
        for _ in range(10):
            await pilot.pause()
        assert table.cursor_row == before
        assert table.row_keys == order
        await pilot.press("enter")
        assert isinstance(app.screen, PositionDetail)


def test_positions_with_warning_and_critical_alerts_snapshot(snap_compare, tmp_path):
    """CRITICAL (delta 0.62, XOM down 11%) above WARNING (KO delta 0.35), then the rest."""
    assert snap_compare(make_app(tmp_path, alerting_world(tmp_path)), run_before=on_positions,
                        terminal_size=SIZE)


async def with_pending_roll(pilot) -> None:
    await wait_engine_started(pilot)
    await pilot.app.engine.monitor_cycle()  # AMD at 150% loss: a roll is proposed
    await pilot.press("f6")
    for _ in range(30):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if pilot.app.screen.rows:
            break
    pilot.app.clear_notifications()
    await pilot.pause()


async def rolls_explained(tmp_path, **settings: str) -> str:
    """The Rolls screen's text with no proposal, on the alerting world."""
    values = make_settings(tmp_path, **FAST, **settings)
    app = PutDeskApp(values, engine_factory=lambda: sim_engine(values, alerting_world(tmp_path)),
                     install_signal_handlers=False, actor=lambda via: f"{via} tester")
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine_started(pilot)
        await pilot.press("f6")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RollsScreen) and screen.rows == []
        return str(screen.query_one("#detail").render())


async def test_no_proposals_say_the_rule_in_force_and_what_the_monitor_saw(tmp_path):
    """Not an empty table: the roll rule with its settings' names and values, the
    monitor's last and next check, and the position nearest to the trigger."""
    text = " ".join((await rolls_explained(tmp_path)).split())
    assert text.startswith("No roll proposals. A roll is proposed when a short put's loss "
                           "reaches 150% of its premium (ROLL_TRIGGER_LOSS_PCT; the stop, "
                           "STOP_LOSS_PCT, is 200%), its |delta| is below 0.50 "
                           "(ROLL_MAX_DELTA), it was rolled fewer than 2 times (MAX_ROLLS) "
                           "and a net-credit roll out to 60 days (ROLL_MAX_DTE)")
    assert ("Watching 4 positions: checked 10:30 ET, next 10:45 ET (every 15 min, "
            "MONITOR_INTERVAL_MINUTES).") in text
    assert "Nearest to the trigger: JNJ 18Dec26 150P, loss 95% of premium." in text


async def test_no_proposals_name_a_position_past_the_trigger_and_why_it_is_not_rolled(
        tmp_path):
    """The trigger from the settings: JNJ's 95% loss is past a 90% trigger, and its delta
    (0.62) bars a roll: the exit rules' own reason is shown."""
    text = " ".join((await rolls_explained(
        tmp_path, ROLL_TRIGGER_LOSS_PCT="0.9", MONITOR_INTERVAL_MINUTES="5")).split())
    assert "loss reaches 90% of its premium" in text
    assert "next 10:35 ET (every 5 min, MONITOR_INTERVAL_MINUTES)" in text
    assert ("JNJ 18Dec26 150P: loss 95% of premium, past the trigger: no roll, closed "
            "instead (Loss 95% of premium approaches the stop and no roll: |delta| 0.62 "
            "at or above 0.50).") in text


def test_pending_roll_snapshot(snap_compare, tmp_path):
    """A pending roll with its buyback, new premium, credit, DTE, delta and margin change."""
    scenario = write(tmp_path, pressured_amd(), "amd.json")
    assert snap_compare(make_app(tmp_path, scenario), run_before=with_pending_roll,
                        terminal_size=SIZE)


async def test_approve_a_roll_with_a_key(tmp_path):
    app = make_app(tmp_path, write(tmp_path, pressured_amd(), "amd.json"))
    async with app.run_test(size=SIZE) as pilot:
        await with_pending_roll(pilot)
        screen = app.screen
        assert isinstance(screen, RollsScreen)
        assert [p.status for p in screen.rows] == ["PENDING"]
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        for _ in range(100):
            await app.workers.wait_for_complete()
            await pilot.pause()
            if screen.rows and screen.rows[0].status != "PENDING":
                break
        assert screen.rows[0].status == "EXECUTED"
        assert screen.rows[0].decided_by == "console tester"
        trades = app.engine.trades.all()
        assert sorted(t.roll_count for t in trades) == [0, 1]


async def test_reject_a_roll_with_a_key_closes_the_position(tmp_path):
    app = make_app(tmp_path, write(tmp_path, pressured_amd(), "amd.json"))
    async with app.run_test(size=SIZE) as pilot:
        await with_pending_roll(pilot)
        screen = app.screen
        await pilot.press("r", "y")
        for _ in range(100):
            await app.workers.wait_for_complete()
            await pilot.pause()
            if screen.rows and screen.rows[0].status != "PENDING":
                break
        assert screen.rows[0].status == "REJECTED"
        assert app.engine.trades.all()[0].status == "CLOSED"


async def on_stress(pilot) -> None:
    await wait_engine_started(pilot)
    await pilot.press("f8")
    for _ in range(50):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if getattr(pilot.app.screen, "results", None):
            break
    await pilot.pause()


def test_stress_snapshot(snap_compare, tmp_path):
    """Five scenarios plus the custom one, a margin call flagged, per-position impact and
    both charts, on a thin account."""
    data = world(cash=14_000, positions=[position("KO", 66, quantity=-3),
                                         position("XOM", 110, quantity=-2)])
    assert snap_compare(make_app(tmp_path, write(tmp_path, data, "thin.json")),
                        run_before=on_stress, terminal_size=SIZE)


async def test_custom_stress_scenario_from_the_console(tmp_path):
    app = make_app(tmp_path, alerting_world(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await on_stress(pilot)
        screen = app.screen
        screen.query_one("#shift").value = "-25"
        screen.query_one("#iv").value = "30"
        await pilot.click("#run")
        for _ in range(50):
            await app.workers.wait_for_complete()
            await pilot.pause()
        custom = screen.results[-1]
        assert custom.name == "custom" and "-25%" in custom.description
        assert custom.pnl < screen.results[0].pnl


async def test_stress_names_each_position_as_the_positions_screen_does(tmp_path):
    """One contract label (core.fmt.contract_label) on both screens."""
    from textual.widgets import DataTable

    from screens.positions import cells

    app = make_app(tmp_path, alerting_world(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await on_positions(pilot)
        assert isinstance(app.screen, PositionsScreen)
        on_positions_screen = sorted(str(cells(v)[1]) for v in app.screen.views.values())
        await pilot.press("f8")
        for _ in range(50):
            await app.workers.wait_for_complete()
            await pilot.pause()
            if getattr(app.screen, "results", None):
                break
        table = app.screen.query_one("#positions", DataTable)
        on_stress = sorted(str(c) for c in table.get_column("pos"))
        assert on_stress == on_positions_screen
        assert "JNJ 18Dec26 150P" in on_stress


async def test_log_screen_filters_the_audit_trail(tmp_path):
    app = make_app(tmp_path, alerting_world(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine_started(pilot)
        await pilot.press("ctrl+k")
        await pilot.press("f9")
        for _ in range(30):
            await app.workers.wait_for_complete()
            await pilot.pause()
        screen = app.screen
        kinds = {e.kind for e in screen.events}
        assert {"alert", "halt"} <= kinds
        screen.query_one("#kind").value = "halt"
        for _ in range(30):
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert {e.kind for e in screen.events} == {"halt"}
        assert screen.events[0].actor == "console tester"


async def test_journal_screen_shows_the_statistics(tmp_path):
    from tests.core.analysis.test_performance import seed

    app = make_app(tmp_path, write(tmp_path, world(), "empty.json"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine_started(pilot)
        seed(app.engine.db)
        await pilot.press("f10")
        for _ in range(30):
            await app.workers.wait_for_complete()
            await pilot.pause()
        headline = str(app.screen.query_one("#headline").render())
        assert "4 closed trades" in headline and "win rate 75%" in headline
        assert app.screen.query_one("#by_sector").row_count == 3


def _cell_style(app, row_text: str, cell: str):
    """The style the terminal gets for `cell` on the screen line containing `row_text`
    (the composed frame, after every cache between the data and the terminal)."""
    for strip in app.screen._compositor.render_strips():
        text = strip.text
        if row_text in text and f" {cell} " in text:
            at = text.index(f" {cell} ") + 1
            for segment in strip:
                if at < len(segment.text):
                    return segment.style
                at -= len(segment.text)
    raise AssertionError(f"{cell!r} not on the line of {row_text!r}")


async def test_a_colour_only_change_is_repainted(tmp_path):
    """DUK from a 4.99% drop to 5.01%: the Drop cell reads 5.0% both times, only its
    colour changes (red above 5%). Rich's Text equality ignores style, so a table that
    compares cells by equality keeps the old, unstyled cell on screen."""
    from rich.color import Color

    from widgets.palette import RED

    data = world(positions=[position("DUK", 80, entry=100.0)])
    app = make_app(tmp_path, write(tmp_path, data, "duk.json"))
    async with app.run_test(size=SIZE) as pilot:
        await on_positions(pilot)
        app.engine.broker.set_price("DUK", 95.01)
        await app.engine.monitor_cycle(exits=False)
        await pilot.pause()
        before = _cell_style(app, "DUK 18Dec26 80P", "5.0%")
        assert before.color != Color.parse(RED)
        app.engine.broker.set_price("DUK", 94.99)
        await app.engine.monitor_cycle(exits=False)
        await pilot.pause()
        after = _cell_style(app, "DUK 18Dec26 80P", "5.0%")
        assert after.color == Color.parse(RED)


async def test_screens_not_shown_do_not_render_and_catch_up_when_shown(tmp_path, monkeypatch):
    """The Overview (another mode) is not redrawn while Positions is on screen; switching
    back shows the latest state at once."""
    from screens.overview import OverviewScreen

    app = make_app(tmp_path, alerting_world(tmp_path))
    calls: list[object] = []
    original = OverviewScreen.show_engine_state
    monkeypatch.setattr(OverviewScreen, "show_engine_state",
                        lambda self, state: (calls.append(state), original(self, state)))
    async with app.run_test(size=SIZE) as pilot:
        await on_positions(pilot)
        calls.clear()
        app.engine.broker.set_price("DUK", 100.0)
        await app.engine.monitor_cycle(exits=False)
        await pilot.pause()
        assert calls == []
        await pilot.press("f1")
        await pilot.pause()
        assert calls and calls[-1] is app.engine_state


def _line(table, key: str) -> str:
    """The drawn text of `key`'s row, as the terminal gets it."""
    return table.render_line(table.row_keys.index(key) + 1 - round(table.scroll_offset.y)).text


async def test_trader_numbers_on_the_row_and_in_the_detail(tmp_path):
    """Mark, OTM, theta $/day, entry, IV and the broker's margin as the simulator has them,
    and the alert text whole once the terminal leaves it the room."""
    from core.broker.base import OptionContract
    from core.fmt import greek, money, pct, pnl, price
    from core.market.pricing import ibkr_short_option_margin

    app = make_app(tmp_path, alerting_world(tmp_path))
    async with app.run_test(size=(240, 40)) as pilot:
        await on_positions(pilot)
        table = app.screen.query_one("#positions")
        key = "KO 20261218 66 P"
        sim = app.engine.broker
        contract = OptionContract.parse_key(key)
        q = await sim.option_quote(contract)
        und = await sim.underlying_price("KO")
        mark = (q.bid + q.ask) / 2
        margin = float(ibkr_short_option_margin(und, 66, mark, "P", False))
        line = _line(table, key)
        for figure in (pnl((1.00 - mark) * 100), pct((und - 66) / und), price(mark),
                       money(q.theta * 100 * -1, cents=True), price(1.00), pct(q.iv),
                       money(margin), greek(q.delta), price(und),
                       "Delta elevated: KO delta=-0.35 (>0.30, thesis weakening)"):
            assert f" {figure} " in line, (figure, line)
        assert "…" not in line
        app.screen.query_one("#positions").focus()
        while table.cursor_key != key:
            await pilot.press("down")
        assert "thesis weakening" in str(table.tooltip)
        await pilot.press("enter")
        await pilot.pause()
        detail = str(app.screen.query_one("#now").render())
        assert f"Mark {price(mark)} (bid/ask mid" in detail
        assert f"entry 1.00/sh = {money(100)}/ct" in detail
        assert f"Margin {money(margin)} (what-if of closing it)" in detail


async def test_margin_unknown_shows_a_dash_and_the_reason(tmp_path):
    app = make_app(tmp_path, alerting_world(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine_started(pilot)
        app.engine.broker.faults.whatif_error = "what-if refused"
        # The figures asked at start are kept for a minute: the next asks fail.
        app.engine.clock.advance(timedelta(seconds=MARGIN_REUSE_SECONDS))
        await pilot.press("f3")
        await app.engine.monitor_cycle(exits=False)
        await pilot.pause()
        summary = str(app.screen.query_one("#summary").render())
        assert "margin — (not all known: enter on a row)" in summary
        app.screen.query_one("#positions").focus()
        await pilot.press("enter")
        await pilot.pause()
        detail = str(app.screen.query_one("#now").render())
        assert "Margin — (the broker's what-if failed: what-if refused)" in detail


async def test_no_proposals_in_a_read_only_console_say_who_proposes(tmp_path):
    """A watcher's monitor proposes nothing: the screen says the trading process does."""
    text = " ".join((await rolls_explained(tmp_path, PUTDESK_READ_ONLY="true")).split())
    assert text.endswith("Read-only console: the trading process proposes rolls; they show "
                         "here when it does.")
