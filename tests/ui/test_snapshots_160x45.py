"""Positions and Candidates on a large terminal (160x45), demo world, pinned clock: the
figures the 80-column layout leaves to the right are on screen, and the last column
takes the width that is left."""

from __future__ import annotations

from textual.pilot import Pilot

from tests.ui.test_candidates import DEMO_RELATIVE, scanned
from tests.ui.test_snapshots_80x24 import make_app, opened

SIZE = (160, 45)


def test_positions(snap_compare, tmp_path):
    """Every figure of a position on one line, alerts in the remaining width."""
    assert snap_compare(make_app(tmp_path), terminal_size=SIZE,
                        run_before=opened("f3", ready=lambda s: bool(getattr(s, "views", 0))))


def test_position_detail(snap_compare, tmp_path):
    """enter on the worst position: every figure, with where the mark and margin come from."""
    positions = opened("f3", ready=lambda s: bool(getattr(s, "views", 0)))

    async def run(pilot: Pilot) -> None:
        await positions(pilot)
        await pilot.press("enter")
        await pilot.app.workers.wait_for_complete()  # the entry and alert history read
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=SIZE, run_before=run)


def test_candidates(snap_compare, tmp_path):
    """After the demo scan: premium per contract, return and annualised yield on screen."""

    async def run(pilot: Pilot) -> None:
        await scanned(pilot, DEMO_RELATIVE)
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), run_before=run, terminal_size=SIZE)


def test_margin(snap_compare, tmp_path):
    """The equity and ExcessLiquidity history: dated x axis, money y axes, both lines
    over time, the legend clear of the data."""
    assert snap_compare(make_app(tmp_path), terminal_size=SIZE,
                        run_before=opened("f7", ready=lambda s: s._plotted_at is not None))


def test_journal(snap_compare, tmp_path):
    """The equity curve: dated x axis, money y axis."""
    assert snap_compare(make_app(tmp_path), run_before=opened("f10"), terminal_size=SIZE)


def test_stress(snap_compare, tmp_path):
    """P&L by scenario and across underlying moves: money y axes."""
    assert snap_compare(make_app(tmp_path), terminal_size=SIZE,
                        run_before=opened("f8", ready=lambda s: bool(getattr(s, "results", 0))))
