"""The read-only console (`putdesk --read-only`): READ-ONLY always shown, order keys hidden
from the footer and answered with the notice, nothing staged, sent or decided; ctrl+k
still halts; resume is refused."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from textual.pilot import Pilot

from console.app import ORDER_ACTIONS, SCREENS, PutDeskApp, _screen_class
from core.db.repos import RollRepo, StagedOrderRepo
from core.db.session import Database
from core.db.tables import RollProposal, StagedOrder
from core.engine import ReadOnlyError
from core.execution.orders import READ_ONLY_REASON
from core.models import Opportunity
from screens.base import READ_ONLY_NOTICE
from screens.confirm import ConfirmScreen
from screens.help import own_bindings
from screens.precheck import PreCheckScreen
from tests.factories import T0, make_settings, sim_engine, wait_engine_started
from tests.ui.test_console import stored_halt
from widgets.status_bar import StatusBar

SIZE = (120, 40)


def make_app(tmp_path) -> PutDeskApp:
    settings = make_settings(tmp_path, PUTDESK_READ_ONLY="true")
    return PutDeskApp(settings, engine_factory=lambda: sim_engine(settings),
                      install_signal_handlers=False, actor=lambda via: f"{via} watcher")


def seed_order_and_roll(app: PutDeskApp) -> tuple[str, str]:
    """A staged order and a pending roll, as the trading console would have left them."""
    db = Database(app.settings.app.database_url.get_secret_value())
    db.upgrade()
    when = T0 - timedelta(days=1)
    order = StagedOrderRepo(db).add(StagedOrder(
        created_at=when, updated_at=when, symbol="KO", strike=60.0,
        expiration=date(2026, 12, 18), contracts=1, limit_price=0.50,
        order_ref="putdesk-watched", actor="trader", decision=json.dumps({})))
    roll = RollRepo(db).save(RollProposal(
        created_at=T0, updated_at=T0, position_id="AMD 20261218 200 P", symbol="AMD",
        contracts=1, old_strike=200.0, old_expiration=date(2026, 12, 18), new_strike=190.0,
        new_expiration=date(2027, 1, 15), new_dte=52, buyback_cost=7.20, new_premium=7.60,
        net_credit=0.40, kind="roll_down_out", reason="loss 195% of premium"))
    db.dispose()
    return order.id, roll.id


def record_notices(app: PutDeskApp) -> list[str]:
    """Every notification's text (toasts expire, so the app's own list is no record)."""
    seen: list[str] = []
    original = app.notify

    def notify(message: str, *args: object, **kwargs: object) -> None:
        seen.append(message)
        original(message, *args, **kwargs)  # type: ignore[arg-type]

    app.notify = notify  # type: ignore[method-assign]
    return seen


def shown_actions(app: PutDeskApp) -> set[str]:
    return {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show}


async def settle(pilot: Pilot, rounds: int = 10) -> None:
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def order_keys(cls: type[object]) -> list[tuple[str, str]]:
    """(key, action) of every order binding a screen declares: from BINDINGS, so a new
    order key is covered by this test without anyone adding it here."""
    blocked = getattr(cls, "ORDER_ACTIONS", frozenset())
    return [(key.strip(), b.action) for b in own_bindings(cls) if b.action in blocked
            for key in b.key.split(",")]


def test_every_order_binding_is_declared_an_order_action():
    """The keys that send, stage, cancel, close or decide are all in ORDER_ACTIONS."""
    expected = {"stage", "execute_one", "execute_all", "cancel", "toggle_dry_run", "reconcile",
                "close_position", "exit_all", "approve", "reject"}
    declared = set(ORDER_ACTIONS)
    for cls in [*(_screen_class(m) for m in SCREENS), PreCheckScreen]:
        declared |= set(getattr(cls, "ORDER_ACTIONS", ()))
    assert declared == expected | {"resume"}


async def test_read_only_refuses_every_order_key_and_still_halts(tmp_path):
    app = make_app(tmp_path)
    order_id, roll_id = seed_order_and_roll(app)
    seen = record_notices(app)

    def notices(_app: PutDeskApp) -> int:
        return sum(1 for text in seen if READ_ONLY_NOTICE in text)

    async with app.run_test(size=SIZE) as pilot:
        await wait_engine_started(pilot)
        assert "READ-ONLY" in app.title
        assert "READ-ONLY" in str(app.screen.query_one(StatusBar).render())

        for mode in SCREENS:
            keys = order_keys(_screen_class(mode))
            if not keys:
                continue
            await app.run_action(f"switch_mode('{mode}')")
            await settle(pilot)
            screen = app.screen
            assert not shown_actions(app) & {action for _key, action in keys}, mode
            for key, action in keys:
                before = notices(app)
                await pilot.press(key)
                await pilot.pause()
                assert app.screen is screen, (mode, key)  # no confirmation opened
                assert notices(app) == before + 1, (mode, key, action)

        screen = PreCheckScreen([Opportunity("KO", date(2026, 12, 31), 62.0, 0.50,
                                             requested_contracts=1)])
        await app.push_screen(screen)
        await settle(pilot)
        assert 0 in screen.decisions  # checking is allowed
        before = notices(app)
        await pilot.press("a")
        await pilot.pause()
        assert app.screen is screen and notices(app) == before + 1
        assert "stage" not in shown_actions(app)
        await pilot.press("escape")

        engine = app.engine
        assert engine.staged.get(order_id).status == "STAGED"
        assert engine.rolls.get(roll_id).status == "PENDING"
        assert engine.staged.list(None) == [engine.staged.get(order_id)]
        with pytest.raises(ReadOnlyError, match=READ_ONLY_REASON):
            await engine.execute()  # the engine refuses too, whatever the front end does

        await pilot.press("ctrl+k")  # a watcher can stop trading
        await pilot.pause()
        halt = stored_halt(app)
        assert halt.halted and halt.by == "console watcher"
        assert "resume" not in shown_actions(app)
        before = notices(app)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert notices(app) == before + 1 and stored_halt(app).halted


def test_the_console_says_what_core_says():
    assert READ_ONLY_NOTICE == READ_ONLY_REASON
