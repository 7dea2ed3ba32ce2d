"""The Candidates screen: scan the demo export, sort, show rejected, open a detail."""

from textual.widgets import DataTable, Input

from console.app import PutDeskApp
from screens.candidates import DEMO_CSV, CandidateDetail, CandidatesScreen
from tests.factories import make_settings, sim_engine, wait_engine_started


def make_app(tmp_path) -> PutDeskApp:
    settings = make_settings(tmp_path)
    return PutDeskApp(settings, engine_factory=lambda: sim_engine(settings),
                      install_signal_handlers=False, actor=lambda via: f"{via} tester")


#: Relative to the repository (pytest runs there): keeps machine paths out of snapshots.
DEMO_RELATIVE = "core/data/scenarios/demo-barchart.csv"


async def scanned(pilot, path: str | None = None) -> None:
    await wait_engine_started(pilot)
    await pilot.press("f2")
    await pilot.pause()
    if path is not None:
        pilot.app.screen.query_one("#csv-path", Input).value = path
    await pilot.press("enter")  # the demo export is filled in on the simulator
    for _ in range(200):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if pilot.app.screen.result is not None:
            return
    raise AssertionError("scan did not finish")


async def test_scan_sort_rejected_and_detail(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await scanned(pilot)
        screen = app.screen
        assert isinstance(screen, CandidatesScreen)
        assert screen.query_one("#csv-path", Input).value == str(DEMO_CSV)
        table = screen.query_one("#accepted", DataTable)
        assert table.row_count == len(screen.result.accepted) > 0
        score_col, symbol_col = table.get_column_index("score"), table.get_column_index("symbol")
        scores = [float(str(table.get_cell_at((r, score_col)))) for r in range(table.row_count)]
        assert scores == sorted(scores, reverse=True)
        assert table.has_focus  # keys go to the results, not the path input
        await pilot.press("s")  # next sort: symbol
        symbols = [str(table.get_cell_at((r, symbol_col))) for r in range(table.row_count)]
        assert symbols == sorted(symbols)
        rejected = screen.query_one("#rejected", DataTable)
        assert not rejected.display
        await pilot.press("x")
        assert rejected.display and rejected.row_count == len(screen.result.rejected)
        stages = {str(rejected.get_cell_at((r, 3))) for r in range(rejected.row_count)}
        assert stages == {"filter", "earnings", "validation"}
        await pilot.press("x")
        table.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CandidateDetail)
        await app.workers.wait_for_complete()
        await pilot.pause()
        chain = app.screen.query_one("#chain", DataTable)
        assert chain.row_count >= 4
        await pilot.press("escape")
        assert isinstance(app.screen, CandidatesScreen)


async def test_unusable_file_is_explained(tmp_path):
    bad = tmp_path / "view.csv"
    bad.write_text("Symbol,Ask,Bid,Exp Date,Strike,Type\nAAPL,1,1,2026-12-18,200,Put\n")
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_engine_started(pilot)
        await pilot.press("f2")
        await pilot.pause()
        path = app.screen.query_one("#csv-path", Input)
        path.value = str(bad)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        summary = str(app.screen.query_one("#summary").render())
        assert "Cannot scan: missing required column(s)" in summary
        assert app.screen.result is None


async def test_path_completion(tmp_path):
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "naked-puts-11-24.csv").write_text("x")
    from screens.candidates import PathSuggester

    suggester = PathSuggester()
    assert await suggester.get_suggestion(f"{tmp_path}/exp") == f"{tmp_path}/exports/"
    assert await suggester.get_suggestion(f"{tmp_path}/exports/na") == (
        f"{tmp_path}/exports/naked-puts-11-24.csv")
    assert await suggester.get_suggestion("/no/such/dir/x") is None


async def scanned_relative(pilot) -> None:
    await scanned(pilot, DEMO_RELATIVE)


def test_candidates_snapshot(snap_compare, tmp_path):
    """The demo export scanned: accepted candidates by score with their components."""
    assert snap_compare(make_app(tmp_path), run_before=scanned_relative,
                        terminal_size=(120, 40))


def test_candidates_rejected_snapshot(snap_compare, tmp_path):
    """x: the rejected candidates with stage and reason."""
    assert snap_compare(make_app(tmp_path), run_before=scanned_relative, press=["x"],
                        terminal_size=(120, 40))



async def test_number_keys_leave_candidates_and_enter_still_scans(tmp_path):
    """The path box is filled on arrival, so the focus rests on Scan: a digit switches
    screens (typed into the path it would spoil it) and Enter scans."""
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_engine_started(pilot)
        await pilot.press("2")
        await pilot.pause()
        assert isinstance(app.screen, CandidatesScreen)
        await pilot.press("3")
        await pilot.pause()
        assert app.screen.SCREEN_NAME == "Positions"
        await pilot.press("2")
        await pilot.pause()
        assert app.screen.query_one("#csv-path", Input).value == str(DEMO_CSV)
        await scanned(pilot)
        assert app.screen.result is not None and app.screen.result.accepted
