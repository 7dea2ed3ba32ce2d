"""Roll targets meet the governor's entry bounds, IV rank and spread included (issue 16:
they used to skip the rules entries pass)."""

from __future__ import annotations

from tests.core.monitoring.test_monitoring import pressured_amd


async def test_a_roll_target_below_the_iv_rank_minimum_is_not_proposed(desk):
    # AMD's IV (0.50) sits at 8% of its 52-week range: every target fails the IV-rank bound.
    engine = await desk(pressured_amd(iv_52w_low=0.46, iv_52w_high=0.96))
    [view] = await engine.monitor_cycle(exits=False)
    proposal, reason = await engine.roll_manager.evaluate_roll(view)
    assert proposal is None
    assert reason.startswith("No viable roll: ") and "iv_rank bound (" in reason


async def test_the_same_position_rolls_when_its_iv_rank_is_inside(desk):
    engine = await desk(pressured_amd())
    [view] = await engine.monitor_cycle(exits=False)
    proposal, reason = await engine.roll_manager.evaluate_roll(view)
    assert proposal is not None, reason
