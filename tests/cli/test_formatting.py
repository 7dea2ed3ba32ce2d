"""The CLI formats money, P&L and greeks as the console does (core.fmt): sign before
"$", P&L signed, greeks rounded; --json carries no float noise."""

import json
import re

from tests.cli.run import putdesk
from tests.core.monitoring.test_monitoring import position
from tests.core.risk.worlds import world, write


def test_stress_and_positions_money_is_signed_before_the_dollar(env, tmp_path):
    data = world(cash=14_000, positions=[position("KO", 66, quantity=-3),
                                         position("XOM", 110, quantity=-2)])
    scenario = str(write(tmp_path, data))
    r = putdesk(env | {"COLUMNS": "160"}, "stress-test", "--scenario", scenario)
    assert r.returncode == 0, r.stderr
    assert "$-" not in r.stdout
    assert re.search(r"-\$\d[\d,]*", r.stdout), r.stdout  # losses read "-$1,234"
    p = putdesk(env | {"COLUMNS": "160"}, "positions", "--scenario", scenario)
    assert p.returncode == 0, p.stderr
    assert "$-" not in p.stdout and re.search(r"[+-]\$\d", p.stdout), p.stdout


def test_json_figures_have_no_float_noise(env, tmp_path):
    data = world(cash=14_000, positions=[position("KO", 66, quantity=-3)])
    j = putdesk(env, "positions", "--json", "--scenario", str(write(tmp_path, data)))
    assert j.returncode == 0, j.stderr

    def floats(x):
        if isinstance(x, float):
            yield x
        elif isinstance(x, dict):
            for v in x.values():
                yield from floats(v)
        elif isinstance(x, list):
            for v in x:
                yield from floats(v)

    values = list(floats(json.loads(j.stdout)))
    assert values and all(float(f"{v:.12g}") == v for v in values)
