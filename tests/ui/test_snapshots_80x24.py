"""The main screens on an 80x24 terminal (an SSH session's default), demo world, pinned
clock: what matters must fit, and the halt must show everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from console.app import PutDeskApp
from tests.factories import make_settings, sim_engine, wait_engine_started
from tests.ui.test_candidates import DEMO_RELATIVE, scanned

SIZE = (80, 24)


def make_app(tmp_path) -> PutDeskApp:
    settings = make_settings(tmp_path)
    return PutDeskApp(settings, engine_factory=lambda: sim_engine(settings),
                      install_signal_handlers=False, actor=lambda via: f"{via} tester")


def opened(*keys: str, ready: Callable[[Any], bool] = lambda screen: True
           ) -> Callable[[Pilot], Any]:
    """run_before: engine started, `keys` pressed, the screen's data in, no toasts."""

    async def run(pilot: Pilot) -> None:
        await wait_engine_started(pilot)
        await pilot.press(*keys)
        for _ in range(60):
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
            if ready(pilot.app.screen):
                break
        await pilot.app.workers.wait_for_complete()
        pilot.app.clear_notifications()
        await pilot.pause()

    return run


def test_overview(snap_compare, tmp_path):
    """Overview: the four panels fit; the status line starts with TRADING ACTIVE."""
    assert snap_compare(make_app(tmp_path), run_before=opened(), terminal_size=SIZE)


def test_halted(snap_compare, tmp_path):
    """After ctrl+k: banner with reason, time and who; HALTED first on the status line."""
    assert snap_compare(make_app(tmp_path), run_before=opened("ctrl+k"), terminal_size=SIZE)


def test_candidates(snap_compare, tmp_path):
    """After the demo scan: the score and its figures come first, up to IV rank."""

    async def run(pilot: Pilot) -> None:
        await scanned(pilot, DEMO_RELATIVE)
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), run_before=run, terminal_size=SIZE)


def test_positions(snap_compare, tmp_path):
    """Qty, DTE, delta, P&L, premium kept and drop come before the underlying."""
    assert snap_compare(make_app(tmp_path), terminal_size=SIZE,
                        run_before=opened("f3", ready=lambda s: bool(getattr(s, "views", 0))))


def test_positions_scrolled_right(snap_compare, tmp_path):
    """Scrolled to its right end: the contract stays in view beside theta, entry, IV,
    margin, drop, underlying and the alerts; no figure shown in part."""
    shown = opened("f3", ready=lambda s: bool(getattr(s, "views", 0)))

    async def run(pilot: Pilot) -> None:
        await shown(pilot)
        table = pilot.app.screen.query_one("#positions")
        table.focus()
        await pilot.press(*["right"] * 80)  # past the end: it stops there
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=run)


def test_orders(snap_compare, tmp_path):
    """No staged orders: LIVE mode line and the empty state saying how to stage one."""
    assert snap_compare(make_app(tmp_path), run_before=opened("f4"), terminal_size=SIZE)


def test_rolls(snap_compare, tmp_path):
    """No roll proposals: the empty state says when one is proposed."""
    assert snap_compare(make_app(tmp_path), run_before=opened("f6"), terminal_size=SIZE)


def test_margin(snap_compare, tmp_path):
    """Gauge full width, the account figures two a line below it."""
    assert snap_compare(make_app(tmp_path), terminal_size=SIZE,
                        run_before=opened("f7", ready=lambda s: s._plotted_at is not None))


def test_stress(snap_compare, tmp_path):
    """Scenarios with P&L, margin, ExcessLiquidity after and the margin-call flag."""
    assert snap_compare(make_app(tmp_path), terminal_size=SIZE,
                        run_before=opened("f8", ready=lambda s: bool(getattr(s, "results", 0))))


def test_log(snap_compare, tmp_path):
    """The message column before who; the highlighted event in full below."""
    assert snap_compare(make_app(tmp_path), terminal_size=SIZE,
                        run_before=opened("f9", ready=lambda s: bool(getattr(s, "events", 0))))


def test_journal(snap_compare, tmp_path):
    """No closed trades: the empty state, then the account's equity curve."""
    assert snap_compare(make_app(tmp_path), run_before=opened("f10"), terminal_size=SIZE)


def test_help(snap_compare, tmp_path):
    """`?` from Overview: the help's first page."""
    assert snap_compare(make_app(tmp_path), run_before=opened("question_mark"),
                        terminal_size=SIZE)


def test_read_only_orders(snap_compare, tmp_path):
    """`putdesk --read-only` on Orders: READ-ONLY in the header, the status line and the
    mode line; no order keys in the footer."""
    settings = make_settings(tmp_path, PUTDESK_READ_ONLY="true")
    app = PutDeskApp(settings, engine_factory=lambda: sim_engine(settings),
                     install_signal_handlers=False, actor=lambda via: f"{via} watcher")
    assert snap_compare(app, run_before=opened("f4"), terminal_size=SIZE)
