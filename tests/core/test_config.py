from pathlib import Path

import pytest

from core.config import ConfigError, env_example_text, load_settings


def test_spec_defaults():
    s = load_settings()
    assert s.screener.dte_min == 7
    assert (s.screener.otm_pct_min, s.screener.otm_pct_max) == (0.10, 0.25)
    assert s.risk.max_margin_per_trade_pct == 0.10
    assert s.execution.max_execution_spread_pct == 0.30
    assert s.validation.iv_rank_min == 0.30
    assert s.validation.max_spread_pct == 0.20
    assert s.risk.vix_halt_threshold == 40.0
    assert s.risk.max_sector_concentration_pct == 0.30
    assert (s.risk.max_daily_loss_pct, s.risk.max_weekly_loss_pct, s.risk.max_drawdown_pct) == (
        -0.02, -0.05, -0.10)
    assert s.sizing.max_risk_per_trade_pct == 0.02
    assert s.app.broker == "sim"


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("BARCHART_DTE_MIN", "0")  # spec 1.2C: still overridable for testing
    monkeypatch.setenv("MAX_EXECUTION_SPREAD_PCT", "0.25")
    s = load_settings()
    assert s.screener.dte_min == 0
    assert s.execution.max_execution_spread_pct == 0.25


def test_env_file_is_read(tmp_path: Path):
    env = tmp_path / "x.env"
    env.write_text("BARCHART_OTM_PCT_MIN=0.12\nPUTDESK_IBKR_PORT=4002\n")
    s = load_settings(env_file=str(env))
    assert s.screener.otm_pct_min == 0.12
    assert s.ibkr.port == 4002


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"BARCHART_DTE_MIN": "seven"}, "BARCHART_DTE_MIN='seven'"),
        ({"MAX_MARGIN_PER_TRADE_PCT": "1.5"},
         "MAX_MARGIN_PER_TRADE_PCT='1.5': Input should be less than or equal to 1"),
        ({"BARCHART_OTM_PCT_MIN": "0.3"},
         "BARCHART_OTM_PCT_MIN=0.3 is greater than BARCHART_OTM_PCT_MAX=0.25"),
        ({"DELTA_WARN": "0.6"}, "DELTA_WARN=0.6 is greater than DELTA_CRITICAL=0.5"),
        ({"PUTDESK_BROKER": "tws"}, "PUTDESK_BROKER='tws'"),
        ({"EXECUTION_OPEN_TIME": "9:30am"}, "EXECUTION_OPEN_TIME='9:30am'"),
        ({"MAX_DAILY_LOSS_PCT": "0.02"}, "MAX_DAILY_LOSS_PCT='0.02'"),
    ],
)
def test_bad_values_name_the_variable(overrides, expected):
    with pytest.raises(ConfigError) as err:
        load_settings(overrides)
    assert expected in str(err.value)


def test_unknown_override_is_refused():
    with pytest.raises(ConfigError, match="NOT_A_SETTING"):
        load_settings({"NOT_A_SETTING": "1"})


def test_secrets_do_not_show_in_repr(monkeypatch):
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2-sentinel")
    monkeypatch.setenv("NOTIFY_WEBHOOK_URL", "https://hooks.example/T000/sentinel")
    s = load_settings()
    assert "hunter2-sentinel" not in repr(s) and "sentinel" not in str(s.notify)
    assert s.notify.smtp_password is not None
    assert s.notify.smtp_password.get_secret_value() == "hunter2-sentinel"


def test_env_example_lists_every_setting_with_its_default():
    committed = (Path(__file__).parents[2] / ".env.example").read_text()
    assert committed == env_example_text(), "regenerate: python -m core.config > .env.example"
