"""The trader's numbers on a position: mark (and whether it is the mid or the last),
entry premium per contract, distance of the strike below the underlying, theta in dollars
a day, and the broker's maintenance margin for it — or None with the reason."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from core.market.pricing import ibkr_short_option_margin
from tests.core.monitoring.test_monitoring import position, quote
from tests.core.risk.worlds import UNDERLYINGS, world


async def test_figures_come_from_the_broker(desk):
    engine = await desk(world(positions=[position("KO", 66, quantity=-2, avg_price=1.25)],
                              option_quotes={"KO 20261218 66 P": quote(0.9, 1.0, -0.35)}))
    [v] = await engine.monitor_cycle(exits=False)
    sim = engine.broker
    und = UNDERLYINGS["KO"]["price"]
    q = await sim.option_quote(v.contract)
    assert v.mark == pytest.approx(0.95) and v.mark_source == "mid"
    assert v.entry_per_contract == pytest.approx(125.0)
    assert v.otm_pct == pytest.approx((und - 66) / und)
    assert v.theta is not None and v.theta == pytest.approx(q.theta)
    assert v.theta_per_day == pytest.approx(q.theta * 100 * -2)
    assert v.theta_per_day > 0  # a short put earns its decay
    # The broker's figure: the simulator's IBKR Reg T rule on its own mark and price.
    expected = 2 * float(ibkr_short_option_margin(und, 66, 0.95, "P", False))
    assert v.margin == pytest.approx(expected)
    assert v.margin_note == "what-if of closing it"
    d = v.as_dict()
    assert d["margin"] == pytest.approx(expected) and d["mark_source"] == "mid"


async def test_margin_unknown_is_none_with_the_reason_logged_once(desk, caplog):
    engine = await desk(world(positions=[position("KO", 66)]))
    engine.broker.faults.whatif_error = "what-if refused"
    with caplog.at_level(logging.WARNING):
        [v] = await engine.monitor_cycle(exits=False)
        await engine.monitor_cycle(exits=False)
    assert v.margin is None
    assert v.margin_note == "the broker's what-if failed: what-if refused"
    assert caplog.text.count("Margin of KO 20261218 66 P unknown") == 1
    engine.broker.faults.whatif_error = None
    [v] = await engine.monitor_cycle(exits=False)
    assert v.margin is not None and v.margin > 0


async def test_a_what_if_that_never_answers_is_bounded(desk, monkeypatch):
    engine = await desk(world(positions=[position("KO", 66)]))
    monkeypatch.setattr(engine.settings.risk, "whatif_timeout_seconds", 0.05)
    engine.broker.faults.whatif_timeout = True
    [v] = await engine.monitor_cycle(exits=False)
    assert v.margin is None
    assert v.margin_note == "the broker's what-if did not answer in time"


async def test_on_ibkr_the_margin_is_the_brokers_what_if_as_on_the_simulator(tmp_path):
    """The IBKR adapter against the TWS wire-protocol peer over the same world: the
    what-if margin and the other figures come through the wire unchanged."""
    from core.broker.scenario import load_scenario
    from core.broker.sim import SimBroker
    from core.clock import ManualClock
    from core.engine import Engine
    from core.paper import TwsPeer
    from tests.core.conftest import FAST
    from tests.core.risk.worlds import write
    from tests.factories import make_settings

    path = write(tmp_path, world(positions=[position("KO", 66, quantity=-2),
                                            position("XOM", 100, entry=133.0)]))
    figures = {}
    for kind in ("sim", "ibkr"):
        scenario = load_scenario(path)
        clock = ManualClock(scenario.now)
        home = tmp_path / kind
        home.mkdir()
        peer = None
        if kind == "sim":
            settings = make_settings(home, PUTDESK_BROKER="sim",
                                     PUTDESK_SIM_SCENARIO=str(path), **FAST)
        else:
            peer = TwsPeer(SimBroker(scenario, clock=clock, label=path.name))
            await peer.start()
            settings = make_settings(home, PUTDESK_BROKER="ibkr", PUTDESK_IBKR_PORT=peer.port,
                                     PUTDESK_IBKR_CLIENT_ID=23,
                                     PUTDESK_IBKR_CONNECT_TIMEOUT=3, **FAST)
        engine = Engine.build(settings, clock=clock)
        await engine.start()
        try:
            views = await engine.monitor_cycle(exits=False)
        finally:
            await engine.stop()
            if peer is not None:
                await peer.stop()
        figures[kind] = sorted((v.position_id, round(v.margin or 0, 2), v.margin_note,
                                v.mark_source, round(v.theta_per_day or 0, 4),
                                round(v.otm_pct or 0, 6)) for v in views)
    assert all(f[1] > 0 and f[2] == "what-if of closing it" for f in figures["sim"])
    assert figures["ibkr"] == figures["sim"]


# --- the margin what-if is kept, not asked on every refresh ------------------------------


def count_what_ifs(engine, monkeypatch) -> list[str]:
    """The what-ifs that reach the broker, by position."""
    asked: list[str] = []
    real = engine.broker.what_if

    async def what_if(order):
        asked.append(order.contract.key)
        return await real(order)

    monkeypatch.setattr(engine.broker, "what_if", what_if)
    return asked


async def test_a_positions_margin_is_asked_once_until_its_contracts_change(desk, monkeypatch):
    from core.broker.base import OrderRequest
    from tests.core.monitoring.test_monitoring import ko_put, settled

    engine = await desk(world(positions=[position("KO", 66), position("XOM", 100)]))
    asked = count_what_ifs(engine, monkeypatch)
    first = await engine.monitor_cycle(exits=False)
    again = await engine.monitor.refresh()
    assert sorted(asked) == ["KO 20261218 66 P", "XOM 20261218 100 P"]
    assert [(v.margin, v.margin_note) for v in again] == [(v.margin, v.margin_note)
                                                          for v in first]
    assert all(v.margin and v.margin_note == "what-if of closing it" for v in again)

    # One more KO put sold: its figure is asked again (the fill's book-changed event
    # refreshes), XOM's is kept; and then kept again.
    bid = (await engine.broker.option_quote(ko_put(66))).bid
    await engine.broker.place_order(OrderRequest("SELL", 1, "more", ko_put(66),
                                                 limit_price=bid))
    await settled(engine)
    views = {v.symbol: v for v in await engine.monitor.refresh()}
    assert sorted(asked) == ["KO 20261218 66 P", "KO 20261218 66 P", "XOM 20261218 100 P"]
    assert views["KO"].contracts == 2
    ko_before = {v.symbol: v for v in first}["KO"].margin
    assert views["KO"].margin == pytest.approx(2 * ko_before, rel=0.05)


async def test_a_kept_margin_is_asked_again_on_a_price_move_the_account_or_in_a_minute(
        desk, monkeypatch):
    from core.monitoring.positions import MARGIN_REUSE_SECONDS

    engine = await desk(world(positions=[position("KO", 66)]))
    asked = count_what_ifs(engine, monkeypatch)
    await engine.monitor.refresh()
    engine.broker.set_price("KO", 76.0 * 1.005)  # a small move keeps it
    await engine.monitor.refresh()
    assert len(asked) == 1
    engine.broker.set_price("KO", 76.0 * 0.98)  # 2% down: asked again
    await engine.monitor.refresh()
    assert len(asked) == 2
    engine.clock.advance(timedelta(seconds=MARGIN_REUSE_SECONDS - 1))
    await engine.monitor.refresh()
    assert len(asked) == 2
    engine.clock.advance(timedelta(seconds=1))  # a minute old: asked again
    await engine.monitor.refresh()
    assert len(asked) == 3
    monkeypatch.setattr(engine.broker, "_account_id", "DU0000042")  # another account
    await engine.monitor.refresh()
    assert len(asked) == 4


async def test_a_failed_margin_what_if_is_not_kept(desk, monkeypatch):
    engine = await desk(world(positions=[position("KO", 66)]))
    asked = count_what_ifs(engine, monkeypatch)
    engine.broker.faults.whatif_error = "what-if refused"
    [v] = await engine.monitor.refresh()
    assert v.margin is None
    engine.broker.faults.whatif_error = None
    [v] = await engine.monitor.refresh()
    assert v.margin is not None and len(asked) == 2


async def test_on_ibkr_two_refreshes_send_one_margin_what_if_a_position(tmp_path):
    """Counted where IBKR would pace them: at the TWS wire-protocol peer."""
    from core.broker.scenario import load_scenario
    from core.broker.sim import SimBroker
    from core.clock import ManualClock
    from core.engine import Engine
    from core.monitoring.positions import MARGIN_REUSE_SECONDS
    from core.paper import TwsPeer
    from tests.core.conftest import FAST
    from tests.core.monitoring.test_monitoring import settled
    from tests.core.risk.worlds import write
    from tests.factories import make_settings

    path = write(tmp_path, world(positions=[position("KO", 66, quantity=-2),
                                            position("XOM", 100, entry=133.0)]))
    scenario = load_scenario(path)
    clock = ManualClock(scenario.now)
    peer = TwsPeer(SimBroker(scenario, clock=clock, label=path.name))
    await peer.start()
    settings = make_settings(tmp_path, PUTDESK_BROKER="ibkr", PUTDESK_IBKR_PORT=peer.port,
                             PUTDESK_IBKR_CLIENT_ID=24, PUTDESK_IBKR_CONNECT_TIMEOUT=3, **FAST)
    engine = Engine.build(settings, clock=clock)
    await engine.open()
    try:
        await engine.broker.connect()
        await settled(engine)  # cycles the connection's position updates started
        clock.advance(timedelta(seconds=MARGIN_REUSE_SECONDS))  # their figures are old
        before = peer.count("whatIf")
        first = await engine.monitor_cycle(exits=False)
        again = await engine.monitor.refresh()
        asked = peer.count("whatIf") - before
    finally:
        await engine.stop()
        await peer.stop()
    assert asked == 2
    assert [v.margin for v in again] == [v.margin for v in first]
    assert all(v.margin for v in again)


async def test_the_positions_quotes_are_asked_together_within_a_bound(desk, monkeypatch):
    """A refresh asks the positions' quotes at once, up to QUOTES_AT_ONCE positions (two
    market-data lines each), not one after another: counted in flight at the broker
    while each request waits (the simulator's latency)."""
    from core.monitoring import positions as monitoring

    monkeypatch.setattr(monitoring, "QUOTES_AT_ONCE", 3)
    book = [position(s, k) for s, k in (("KO", 66), ("KO", 64), ("AAPL", 200),
                                        ("AAPL", 190), ("XOM", 100), ("XOM", 95))]
    engine = await desk(world(positions=book))
    sim = engine.broker
    sim.faults.latency_seconds = 0.05
    in_flight = most = 0
    original = sim.option_quote

    async def counted(contract):
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await original(contract)
        finally:
            in_flight -= 1

    monkeypatch.setattr(sim, "option_quote", counted)
    views = await engine.monitor.refresh(notify=False)
    assert len(views) == 6 and all(v.mark is not None for v in views)
    assert most == 3  # together, and never more than the bound


async def test_an_underlying_price_failure_leaves_the_options_quote(desk, monkeypatch):
    """The exits and the delta alert need only the option's quote: no price for the
    stock (no subscription, a competing session) must not blank it, or no stop fires."""
    from core.broker.base import BrokerError

    engine = await desk(world(positions=[position("KO", 66)],
                              option_quotes={"KO 20261218 66 P": quote(2.9, 3.1, -0.55)}))

    async def no_stock(symbol):
        raise BrokerError(f"{symbol}: Requested market data is not subscribed", code=354)

    monkeypatch.setattr(engine.broker, "underlying_price", no_stock)
    [v] = await engine.monitor_cycle(exits=False)
    assert v.mark == pytest.approx(3.0) and v.delta == pytest.approx(-0.55)
    assert v.underlying_price is None
    assert any(a.kind == "delta" for a in v.alerts)
