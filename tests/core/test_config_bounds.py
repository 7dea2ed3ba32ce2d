"""Every numeric setting has a finite lower and upper bound (found from the settings
groups, so a new one without bounds fails here), and durations cannot be next to zero."""

from __future__ import annotations

import annotated_types as at
import pytest

from core.config import GROUPS, ConfigError, env_name, load_settings

NUMBERS = [(env_name(group, name), field)
           for group in GROUPS.values() for name, field in group.model_fields.items()
           if field.annotation in (int, float)]


@pytest.mark.parametrize(("name", "field"), NUMBERS, ids=[n for n, _ in NUMBERS])
def test_every_number_is_bounded_both_ways(name, field):
    low = [m for m in field.metadata if isinstance(m, at.Ge | at.Gt)]
    high = [m for m in field.metadata if isinstance(m, at.Le | at.Lt)]
    assert low and high, f"{name} needs a lower and an upper bound"
    if name.endswith(("_SECONDS", "_MINUTES", "_HOURS", "_TIMEOUT")) and "DELAY" not in name:
        # a loop period or a timeout of 1e-9 spins or gives up at once (a delay may be 0)
        assert any(isinstance(m, at.Ge) and m.ge > 0 for m in low), \
            f"{name}: a duration needs a minimum above zero (ge=...)"


@pytest.mark.parametrize(("name", "value"), [
    ("PUTDESK_SIM_SEED", "-1"), ("PUTDESK_SIM_SEED", str(2**64)),
    ("ORDER_TIMEOUT_SECONDS", "1e300"), ("MONITOR_INTERVAL_MINUTES", "1e-9"),
    ("MAX_POSITIONS", str(10**12)), ("MAX_DAILY_LOSS_PCT", "-1e300"),
])
def test_the_issue_values_are_refused_by_name(name, value):
    with pytest.raises(ConfigError, match=f"^invalid setting: {name}="):
        load_settings({name: value})
