"""Orders screen: stage a candidate from Candidates, send it from Orders, watch it fill."""

from __future__ import annotations

import asyncio

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
    screen = await staged_on_orders(pilot)
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


async def test_an_own_fill_reaches_positions_without_a_refresh(tmp_path):
    """The fill moves the book (as IBKR's position update does): Positions shows the new
    short put without `r` and long before the next monitor cycle."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await staged_then_sent(pilot)
        [row] = app.screen.rows
        assert row.status == "FILLED"
        await pilot.press("f3")

        def shown() -> bool:  # on the Positions screen itself
            return any(v.symbol == row.symbol and v.contract.strike == row.strike
                       for v in getattr(app.screen, "views", {}).values())

        for _ in range(300):
            if shown():
                break
            await pilot.pause(0.01)
        assert shown(), "the fill did not reach Positions"


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


async def staged_on_orders(pilot) -> OrdersScreen:
    """Candidates -> pre-check -> approve & stage the first -> Orders, the row shown."""
    await checked(pilot)
    await pilot.press("a", "y")
    await pilot.app.workers.wait_for_complete()
    await pilot.press("escape", "f4")
    screen = pilot.app.screen
    assert isinstance(screen, OrdersScreen)
    for _ in range(100):
        await pilot.pause()
        if screen.rows:
            break
    assert [r.status for r in screen.rows] == ["STAGED"]
    return screen


async def sent_and_reloaded(pilot, screen: OrdersScreen, keys: tuple[str, ...]) -> None:
    """Press `keys` (send, confirm), wait for the send and the row's new text."""
    before = screen.rows[0].message
    await pilot.press(*keys)
    for _ in range(300):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if screen.rows and screen.rows[0].message != before:
            return
    raise AssertionError("the row did not change")


def row_cells(screen: OrdersScreen) -> tuple[str, str]:
    """(status cell, message cell) of the first row as shown."""
    table = screen.query_one("#orders")
    key = screen.rows[0].id
    return str(table.get_cell(key, "status")), str(table.get_cell(key, "message"))


def stored(tmp_path, row_id: str):
    """The row as another process (or a restart) reads it: a new connection."""
    from core.db.repos import StagedOrderRepo
    from core.db.session import Database

    db = Database(f"sqlite:///{tmp_path}/putdesk.db")
    try:
        return StagedOrderRepo(db).get(row_id)
    finally:
        db.dispose()


async def test_a_dry_run_leaves_its_result_in_the_row(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await staged_on_orders(pilot)
        await sent_and_reloaded(pilot, screen, ("d", "e", "y"))
        status, message = row_cells(screen)
        assert status == "DRY RUN"
        assert message.startswith("DRY RUN ok at $") and "nothing sent (still staged)" in message
        row = stored(tmp_path, screen.rows[0].id)
        assert row.status == "STAGED" and row.message == screen.rows[0].message
        assert app.engine.broker._orders == {}
        # Still staged: it can be sent for real now.
        assert screen.check_action("execute_one", ()) is True


async def test_a_send_refused_while_halted_says_so_in_the_row(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await staged_on_orders(pilot)
        await asyncio.to_thread(app.engine.halt, "operator pause", "tester")
        await sent_and_reloaded(pilot, screen, ("e", "y"))
        status, message = row_cells(screen)
        assert status == "REFUSED"
        assert message.startswith("REFUSED: No longer passes the risk checks")
        assert "Trading halted: operator pause" in message and message.endswith(
            "(still staged)")
        row = stored(tmp_path, screen.rows[0].id)
        assert row.status == "STAGED" and row.message == message
        assert app.engine.broker._orders == {}


async def test_a_send_refused_as_a_duplicate_says_so_in_the_row(tmp_path):
    """Another client already sells the same put (working at the broker): the re-check
    refuses the send for good, and the row says why."""
    from core.broker.base import OptionContract, OrderRequest, OrderType

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await staged_on_orders(pilot)
        row = screen.rows[0]
        assert row.expiration is not None and row.strike is not None
        contract = OptionContract(row.symbol, row.expiration, row.strike)
        quote = await app.engine.broker.option_quote(contract)
        await app.engine.broker.place_order(OrderRequest(
            "SELL", 1, "putdesk-elsewhere0000", contract, order_type=OrderType.LIMIT,
            limit_price=round(quote.ask + 1, 2)))
        await sent_and_reloaded(pilot, screen, ("e", "y"))
        status, message = row_cells(screen)
        assert status == "REJECTED"
        assert message.startswith("No longer passes the risk checks: REJECTED by duplicate")
        assert stored(tmp_path, row.id).message == message
