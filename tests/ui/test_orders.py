"""Orders screen: stage a candidate from Candidates, send it from Orders, watch it fill."""

from __future__ import annotations

from console.app import PutDeskApp
from screens.confirm import ConfirmScreen
from screens.orders import OrdersScreen
from tests.factories import make_settings, sim_engine
from tests.ui.test_precheck_margin import checked

SIZE = (120, 40)
FAST = {"ORDER_REPRICE_INTERVAL_SECONDS": "0.05", "ORDER_TIMEOUT_SECONDS": "5"}


def make_app(tmp_path) -> PutDeskApp:
    settings = make_settings(tmp_path, **FAST)
    return PutDeskApp(settings, engine_factory=lambda: sim_engine(settings),
                      install_signal_handlers=False, actor=lambda via: f"{via} tester")


async def staged_then_sent(pilot) -> None:
    """Candidates -> pre-check -> approve & stage -> Orders -> send -> filled."""
    await checked(pilot)
    await pilot.press("a", "y")
    await pilot.app.workers.wait_for_complete()
    await pilot.press("escape", "f4")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, OrdersScreen)
    for _ in range(100):
        await pilot.pause()
        if screen.rows:
            break
    assert [r.status for r in screen.rows] == ["STAGED"]
    await pilot.press("e")
    assert isinstance(pilot.app.screen, ConfirmScreen)
    await pilot.press("y")
    for _ in range(300):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if screen.rows and screen.rows[0].status == "FILLED":
            break
    pilot.app.clear_notifications()
    await pilot.pause()


async def test_stage_from_candidates_send_from_orders_and_see_it_fill(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await staged_then_sent(pilot)
        screen = app.screen
        [row] = screen.rows
        assert row.status == "FILLED" and row.filled == row.contracts
        assert row.actor == "console tester"
        positions = await app.engine.broker.positions()
        assert any(p.contract is not None and p.contract.symbol == row.symbol
                   and p.contract.strike == row.strike and p.quantity == -row.contracts
                   for p in positions)
        await pilot.press("e")  # nothing staged any more: the binding is disabled
        assert app.screen is screen


async def test_dry_run_toggle_sends_nothing(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await checked(pilot)
        await pilot.press("a", "y")
        await app.workers.wait_for_complete()
        await pilot.press("escape", "f4")
        for _ in range(50):
            await pilot.pause()
        screen = app.screen
        await pilot.press("d", "e", "y")
        for _ in range(100):  # until the dry run has reported (it notifies each order)
            await app.workers.wait_for_complete()
            await pilot.pause()
            if any("DRY_RUN" in n.message for n in app._notifications):
                break
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert any("DRY_RUN" in n.message for n in app._notifications)
        assert [r.status for r in screen.rows] == ["STAGED"]
        assert app.engine.broker._orders == {}


def test_orders_after_a_fill_snapshot(snap_compare, tmp_path, monkeypatch):
    """The staged order filled: status, fill, live limit and its deviation, message."""
    import itertools
    import uuid

    counter = itertools.count(1)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(counter)))
    assert snap_compare(make_app(tmp_path), run_before=staged_then_sent, terminal_size=SIZE)


async def test_orders_list_every_kind_and_filter_by_kind(tmp_path):
    """A close made from Positions is an order like the sale: F4 lists both, `k` shows
    one kind at a time."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await staged_then_sent(pilot)
        engine = app.engine
        views = await engine.monitor.refresh(notify=False)
        result = await engine.exits.close(views[0], "operator close", "console tester")
        assert result.outcome == "FILLED"
        screen = app.screen
        assert isinstance(screen, OrdersScreen)
        for _ in range(100):
            await pilot.pause()
            if len(screen.rows) == 2:
                break
        assert sorted(r.kind for r in screen.rows) == ["close", "open"]
        await pilot.press("k")  # open only
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [r.kind for r in screen.rows] == ["open"]
        await pilot.press("k")  # close only
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [(r.kind, r.action, r.status) for r in screen.rows] == [("close", "BUY",
                                                                         "FILLED")]
