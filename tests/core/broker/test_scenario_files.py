import json

import pytest

from core.broker.scenario import Scenario, ScenarioError, demo_scenario_path, load_scenario

BASE = {"version": 1, "now": "2026-11-24T10:30:00-05:00",
        "account": {"id": "DU1", "cash": 50000.0},
        "underlyings": {"AAPL": {"price": 230.0, "iv": 0.28}}}


def with_(**changes):
    data = json.loads(json.dumps(BASE))
    data.update(changes)
    return data


def test_minimal_file_loads():
    scenario = Scenario.from_data({k: BASE[k] for k in ("version", "now", "account")})
    assert scenario.account.cash == 50000.0 and scenario.positions == []


def test_demo_world_loads_and_is_rich():
    demo = load_scenario(demo_scenario_path())
    assert len(demo.underlyings) >= 40
    sectors = {u.sector for u in demo.underlyings.values()}
    assert len(sectors) >= 10
    assert len(demo.positions) >= 5 and demo.stock_positions
    under_pressure = [p for p in demo.positions
                      if p.underlying_at_entry and demo.underlyings[p.symbol].price
                      < 0.92 * p.underlying_at_entry]
    assert len(under_pressure) == 1
    assert demo.equity_history


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (with_(underlyings={"AAPL": {"price": -5, "iv": 0.3}}), "underlyings.AAPL.price:"),
        (with_(underlyings={"AAPL": {"price": 5, "iv": 0.3, "colour": "red"}}),
         "underlyings.AAPL.colour:"),
        (with_(version=2), "version:"),
        (with_(now="2026-11-24T10:30:00"), "now:"),
        (with_(account={"cash": 1.0}), "account.id:"),
        (with_(positions=[
            {"symbol": "AAPL", "strike": 200, "expiration": "2026-12-18", "quantity": -1,
             "avg_price": 1},
            {"symbol": "AAPL", "strike": 200, "expiration": "2026-13-01", "quantity": -1,
             "avg_price": 1}]), "positions[1].expiration:"),
        (with_(positions=[{"symbol": "AAPL", "strike": 200, "expiration": "2026-12-18",
                           "quantity": 0, "avg_price": 1}]), "positions[0].quantity:"),
        (with_(positions=[{"symbol": "MSFT", "strike": 200, "expiration": "2026-12-18",
                           "quantity": -1, "avg_price": 1}]), "positions[0].symbol:"),
        (with_(option_quotes={"AAPL 20261218 200 X": {"bid": 1, "ask": 2}}),
         "option_quotes.AAPL 20261218 200 X:"),
        (with_(option_quotes={"AAPL 20261218 200 P": {"bid": 3, "ask": 2}}),
         "option_quotes.AAPL 20261218 200 P:"),
        (with_(stock_positions=[{"symbol": "X", "shares": 100, "avg_price": 0}]),
         "stock_positions[0].avg_price:"),
        (with_(underlyings={"AAPL": {"price": 5, "iv": 0.3, "iv_52w_low": 0.5,
                                     "iv_52w_high": 0.2}}), "underlyings.AAPL:"),
    ],
)
def test_bad_field_is_named_by_its_json_path(data, path):
    with pytest.raises(ScenarioError) as err:
        Scenario.from_data(data)
    assert str(err.value).startswith(path), str(err.value)


def test_broken_json_names_line_and_column(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1,\n "now": }')
    with pytest.raises(ScenarioError, match="line 2 column"):
        load_scenario(bad)


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.json")
