"""The pre-trade check screen (from Candidates) and the margin screen: Pilot flows and
snapshots of an approved, a warned and a rejected decision and of the gauge's bands."""

from __future__ import annotations

from console.app import PutDeskApp
from core.db.repos import StagedOrderRepo
from screens.confirm import ConfirmScreen
from screens.precheck import PreCheckScreen
from tests.core.risk.worlds import short_put, world, write
from tests.factories import make_settings, sim_engine, wait_engine_started
from tests.ui.test_candidates import scanned_relative

SIZE = (120, 40)


def make_app(tmp_path, scenario=None, **overrides) -> PutDeskApp:
    settings = make_settings(tmp_path, **overrides)
    return PutDeskApp(settings, engine_factory=lambda: sim_engine(settings, scenario),
                      install_signal_handlers=False, actor=lambda via: f"{via} tester")


async def checked(pilot, keys=("c",)) -> None:
    """Scan the demo export, press `keys` on Candidates, wait for every decision."""
    await scanned_relative(pilot)
    await pilot.press(*keys)
    for _ in range(300):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        screen = pilot.app.screen
        if isinstance(screen, PreCheckScreen) and len(screen.decisions) == len(
                screen.opportunities):
            # Toasts expire on a timer: a slow run must not photograph a different screen.
            pilot.app.clear_notifications()
            await pilot.pause()
            return
    raise AssertionError("the pre-trade checks did not finish")


async def test_approve_and_stage_an_approved_candidate(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await checked(pilot)
        screen = app.screen
        decision = screen.decisions[0]
        assert decision.approved
        assert len(screen.query_one("#checks").rows) == 18
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        staged = StagedOrderRepo(app.engine.db).list()
        assert [(s.symbol, s.strike, s.contracts) for s in staged] == [
            (decision.opportunity.symbol, decision.opportunity.strike,
             decision.opportunity.contracts)]
        assert staged[0].order_ref.startswith("putdesk-")
        await pilot.press("a")  # already staged: the binding is disabled
        assert app.screen is screen
        await pilot.press("escape")
        assert not isinstance(app.screen, PreCheckScreen)


async def test_a_rejected_decision_cannot_be_staged(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine_started(pilot)
        await pilot.press("ctrl+k")
        await checked(pilot)
        decision = app.screen.decisions[0]
        assert decision.rejected_by.name == "kill_switch"
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, PreCheckScreen)  # no confirmation offered
        assert StagedOrderRepo(app.engine.db).list() == []


async def test_marked_candidates_are_checked_together(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await checked(pilot, keys=("space", "space", "space", "c"))
        screen = app.screen
        assert len(screen.decisions) == 3
        await pilot.press("down")
        await pilot.pause()
        shown = screen.query_one("#checks")
        assert shown.rows and screen.decisions[1].opportunity.label in str(
            screen.query_one("#decisions").get_row_at(1)[0])


def test_precheck_approved_snapshot(snap_compare, tmp_path):
    """The top demo candidate: every check passes; sizing and IBKR what-if figures."""
    assert snap_compare(make_app(tmp_path), run_before=checked, terminal_size=SIZE)


def test_precheck_warned_snapshot(snap_compare, tmp_path):
    """What-if down: approved on the estimate, the margin check and panel say so."""
    async def run_before(pilot):
        await wait_engine_started(pilot)
        pilot.app.engine.broker.faults.whatif_error = "margin calculation unavailable"
        await checked(pilot)

    assert snap_compare(make_app(tmp_path), run_before=run_before, terminal_size=SIZE)


def test_precheck_rejected_snapshot(snap_compare, tmp_path):
    """Halted: rejected by the kill switch; every later check still shows what it saw."""
    async def run_before(pilot):
        await wait_engine_started(pilot)
        await pilot.press("ctrl+k")
        await checked(pilot)

    assert snap_compare(make_app(tmp_path), run_before=run_before, terminal_size=SIZE)


def _thin(tmp_path, cash: float):
    """Short CAT and MSFT puts worth $2,562, maintenance margin $30,762: cash sets the
    band; a quiet week of history."""
    nlv = cash - 2_562
    data = world(cash=cash, positions=[short_put("CAT", 450, quantity=-3),
                                       short_put("MSFT", 420, quantity=-3)],
                 equity_history=[{"date": "2026-11-20", "net_liquidation": nlv * 0.99},
                                 {"date": "2026-11-23", "net_liquidation": nlv * 1.004}])
    return write(tmp_path, data, "thin.json")


async def margin_screen(pilot) -> None:
    await wait_engine_started(pilot)
    await pilot.press("f7")
    for _ in range(50):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def test_margin_gauge_healthy_snapshot(snap_compare, tmp_path):
    """Demo account: ExcessLiquidity ~84% of NLV, HEALTHY; history chart."""
    assert snap_compare(make_app(tmp_path), run_before=margin_screen, terminal_size=SIZE)


def test_margin_gauge_warning_snapshot(snap_compare, tmp_path):
    """ExcessLiquidity ~15% of NLV: the LOW band (10-20%)."""
    assert snap_compare(make_app(tmp_path, _thin(tmp_path, 38_750)), run_before=margin_screen,
                        terminal_size=SIZE)


def test_margin_gauge_danger_snapshot(snap_compare, tmp_path):
    """ExcessLiquidity ~6% of NLV: the DANGER band (< 10%)."""
    assert snap_compare(make_app(tmp_path, _thin(tmp_path, 35_290)), run_before=margin_screen,
                        terminal_size=SIZE)


async def test_recheck_after_staging_is_no_duplicate_of_its_own_staged_order(tmp_path):
    """Issue 18: `r` after `a` re-checks the staged trade as the staged order; before,
    it called the operator's own staged order a duplicate."""
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await checked(pilot)
        screen = app.screen
        await pilot.press("a", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert 0 in screen.staged
        screen.decisions.clear()
        await pilot.press("r")
        for _ in range(300):
            await app.workers.wait_for_complete()
            await pilot.pause()
            if 0 in screen.decisions:
                break
        decision = screen.decisions[0]
        duplicate = next(c for c in decision.checks if c.name == "duplicate")
        assert duplicate.status == "pass", duplicate.reason
        assert decision.approved, decision.summary
        assert str(screen.query_one("#decisions").get_cell("0", "result")) == "STAGED"
        await pilot.press("a")  # still staged once: no second staging offered
        assert app.screen is screen
        assert len(StagedOrderRepo(app.engine.db).list()) == 1
