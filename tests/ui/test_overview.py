"""The Overview is the trader's home: the book first (P&L, exits due, rolls, working
orders, alerts, greeks, headroom, the next cycle), within 80x24 by priority and with more
at 160x45. Demo world, pinned clock (Nov 24 10:30 ET)."""

from __future__ import annotations

import uuid
from datetime import date

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static

from console.app import PutDeskApp
from core.db.tables import StagedOrder
from tests.factories import make_settings, sim_engine, wait_engine_started


def make_app(tmp_path) -> PutDeskApp:
    settings = make_settings(tmp_path)
    return PutDeskApp(settings, engine_factory=lambda: sim_engine(settings),
                      install_signal_handlers=False, actor=lambda via: f"{via} tester")


async def book_shown(pilot: Pilot) -> None:
    await wait_engine_started(pilot)
    for _ in range(100):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if getattr(pilot.app.screen, "book", None) is not None:
            break
    await pilot.app.workers.wait_for_complete()
    pilot.app.clear_notifications()
    await pilot.pause()


def book_text(app: PutDeskApp, width: int = 160) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(app.screen.query_one("#book", Static).content)
    return console.export_text()


async def test_the_book_says_what_happens_next_worst_first(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await book_shown(pilot)
        book = app.screen.book  # type: ignore[attr-defined]
        # Worst P&L first: AMD is 195% of its premium down.
        assert book.positions[0].symbol == "AMD"
        pnls = [v.pnl for v in book.positions]
        assert pnls == sorted(pnls)
        # The four past the 50% profit target close, AMD is proposed a roll, next cycle.
        due = {d.view.symbol: d.rule for d in book.exits_due}
        assert due == {"AMD": "roll", "JPM": "profit_target", "XOM": "profit_target",
                       "AAPL": "profit_target", "SPY": "profit_target"}
        text = book_text(app, 80)
        # Day P&L against the loss breakers' baseline (the previous session's close).
        assert book.day_pnl is not None and "vs the 2026-11-23 close" in book.day_basis
        assert f"day {'-' if book.day_pnl < 0 else '+'}$" in text
        assert "5 exits due" in text
        assert "next cycle 10:45 ET (in 15 min)" in text
        assert "-$477" in text and "CLOSE: profit target" in text
        assert "alerts 2 WARNING" in text
        # Greeks summed over the book (short puts: long share delta, positive theta).
        assert book.delta.missing == 0 and book.delta.total > 0
        assert book.theta.missing == 0 and book.theta.total > 0
        assert f"delta +{book.delta.total:,.0f} sh" in text
        assert book.headroom is not None and "headroom $" in text
        # The book comes first and fits above the fold of an 80x24 terminal.
        region = app.screen.query_one("#book").region
        assert region.y <= 3 and region.bottom <= 22


async def test_a_working_order_from_another_process_shows_in_the_book(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(160, 45)) as pilot:
        await book_shown(pilot)
        assert "0 working" in book_text(app)
        engine = app.engine
        assert engine is not None
        now = engine.clock.now()
        engine.staged.add(StagedOrder(
            symbol="XOM", strike=105.0, expiration=date(2026, 12, 18), contracts=2,
            limit_price=0.09, status="WORKING", kind="close", action="BUY",
            order_ref=f"putdesk-close-{uuid.uuid4().hex[:8]}", decision="{}",
            created_at=now, updated_at=now, position_id="other"))
        engine.orders_changed()  # what the ledger's follower does on a change
        for _ in range(50):
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
            if len(app.screen.book.working_orders) == 1:  # type: ignore[attr-defined]
                break
        assert "1 working: BUY 2 XOM 105P at 0.09 (close)" in book_text(app)


def test_overview_80x24(snap_compare, tmp_path):
    """The book first: P&L, exits due, next cycle, rolls, orders, alerts, greeks,
    headroom and the five worst positions; the account below."""
    assert snap_compare(make_app(tmp_path), run_before=book_shown, terminal_size=(80, 24))


def test_overview_160x45(snap_compare, tmp_path):
    """Every position with mark, entry, theta and IV; the four panels below."""
    assert snap_compare(make_app(tmp_path), run_before=book_shown, terminal_size=(160, 45))
