"""Snapshots of the main screens at a fixed size, demo world, pinned clock."""

from console.app import PutDeskApp
from tests.factories import make_settings, sim_engine, wait_engine_started


def make_app(tmp_path) -> PutDeskApp:
    settings = make_settings(tmp_path)
    return PutDeskApp(settings, engine_factory=lambda: sim_engine(settings),
                      install_signal_handlers=False, actor=lambda via: f"{via} tester")


async def engine_started(pilot) -> None:
    await wait_engine_started(pilot)


def book_then(*keys: str):
    """The Overview's book in, then `keys`, then the book reloaded (it follows the halt)."""
    from tests.ui.test_overview import book_shown

    async def run(pilot) -> None:
        await book_shown(pilot)
        await pilot.press(*keys)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return run


def test_overview(snap_compare, tmp_path):
    """Overview on the demo world: account, kill switch active, broker, market open."""
    from tests.ui.test_overview import book_shown

    assert snap_compare(make_app(tmp_path), run_before=book_shown, terminal_size=(120, 40))


def test_halted_banner(snap_compare, tmp_path):
    """After ctrl+k: the red banner with reason, time and who; status line says HALTED."""
    assert snap_compare(make_app(tmp_path), run_before=book_then("ctrl+k"),
                        terminal_size=(120, 40))


def test_resume_confirmation(snap_compare, tmp_path):
    """ctrl+r while halted: the confirmation shows the reason; Cancel has the focus."""
    assert snap_compare(make_app(tmp_path), run_before=book_then("ctrl+k", "ctrl+r"),
                        terminal_size=(120, 40))
