"""Settings: every threshold and connection value, from the environment and `.env`.

Grouped as the spec groups them. The spec's variable names are kept as they are
(BARCHART_DTE_MIN, MAX_MARGIN_PER_TRADE_PCT, SMTP_HOST ...); PutDesk's own are
prefixed PUTDESK_. `.env.example` lists every one with its default and is checked
against this module by a test, so the two cannot drift apart.

A bad value raises ConfigError naming the variable and the reason. Every number has a
lower and an upper bound (tests/core/test_config.py checks it for every field): a value
like ORDER_TIMEOUT_SECONDS=1e300 or MONITOR_INTERVAL_MINUTES=1e-9 is refused by name, not
left to overflow or spin a loop.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(Exception):
    """A setting is invalid. The message names the environment variable."""


def _env(name: str) -> Any:
    return Field(validation_alias=AliasChoices(name))


class _Group(BaseSettings):
    """One group of settings, read from the environment and the .env file."""

    model_config = SettingsConfigDict(
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=False,
        validate_default=True,
        allow_inf_nan=False,  # "inf" would silently switch a limit off
    )
    #: (min field, max field) pairs that must satisfy min <= max.
    _ranges: ClassVar[tuple[tuple[str, str], ...]] = ()

    @model_validator(mode="after")
    def _check_ranges(self) -> _Group:
        for lo, hi in self._ranges:
            lo_v, hi_v = getattr(self, lo), getattr(self, hi)
            if lo_v is not None and hi_v is not None and lo_v > hi_v:
                lo_env, hi_env = env_name(type(self), lo), env_name(type(self), hi)
                raise ValueError(f"{lo_env}={lo_v} is greater than {hi_env}={hi_v}")
        return self


def env_name(group: type[BaseModel], field_name: str) -> str:
    alias = group.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field_name.upper()


def _f(env: str, default: Any, description: str, **kw: Any) -> Any:
    return Field(default, validation_alias=AliasChoices(env), description=description, **kw)


class ScreenerSettings(_Group):
    """Barchart screening (spec 1.2)."""

    _ranges = (("dte_min", "dte_max"), ("otm_pct_min", "otm_pct_max"),
               ("raw_iv_min", "raw_iv_max"), ("delta_min", "delta_max"))

    api_key: SecretStr | None = _f("BARCHART_API_KEY", None, "Barchart OnDemand API key")
    api_url: str = _f("BARCHART_API_URL", "https://ondemand.websol.barchart.com",
                      "Barchart OnDemand base URL")
    dte_min: int = _f("BARCHART_DTE_MIN", 7, "Minimum days to expiration. 7, not 0: a "
                      "naked put needs time to recover; 0-DTE carries extreme gamma and "
                      "after-hours assignment risk", ge=0, le=3650)
    dte_max: int = _f("BARCHART_DTE_MAX", 45, "Maximum days to expiration", ge=0, le=3650)
    otm_pct_min: float = _f("BARCHART_OTM_PCT_MIN", 0.10,
                            "Minimum OTM% = (price - strike) / price", ge=0, le=1)
    otm_pct_max: float = _f("BARCHART_OTM_PCT_MAX", 0.25, "Maximum OTM%", ge=0, le=1)
    raw_iv_min: float = _f("BARCHART_RAW_IV_MIN", 0.30,
                           "Minimum RAW implied volatility (Barchart's IV, not IV rank)",
                           ge=0, le=10)
    raw_iv_max: float = _f("BARCHART_RAW_IV_MAX", 0.80, "Maximum RAW implied volatility",
                           ge=0, le=10)
    delta_min: float = _f("BARCHART_DELTA_MIN", 0.05, "Minimum |delta|", ge=0, le=1)
    delta_max: float = _f("BARCHART_DELTA_MAX", 0.30, "Maximum |delta|", ge=0, le=1)
    min_bid: float = _f("BARCHART_MIN_BID", 0.20, "Minimum option bid ($)", ge=0, le=100_000)
    min_volume: int = _f("BARCHART_MIN_VOLUME", 0, "Minimum option volume", ge=0, le=10**9)
    min_open_interest: int = _f("BARCHART_MIN_OPEN_INTEREST", 100,
                                "Minimum option open interest", ge=0, le=10**9)
    stale_file_hours: float = _f("BARCHART_STALE_FILE_HOURS", 24.0,
                                 "Warn when a CSV export is older than this", ge=0.01, le=8760)
    csv_max_mb: float = _f("PUTDESK_CSV_MAX_MB", 50.0,
                           "Largest Barchart CSV export read, in MB (a bigger file is refused "
                           "with its size)", gt=0, le=10_000)


class ValidationSettings(_Group):
    """IBKR validation of screened candidates (spec 1.2B)."""

    max_spread_pct: float = _f("IBKR_MAX_SPREAD_PCT", 0.20,
                               "Maximum (ask - bid) / bid at screening", ge=0, le=10)
    iv_rank_min: float = _f("IBKR_IV_RANK_MIN", 0.30,
                            "Minimum IV rank over 52 weeks (0-1)", ge=0, le=1)
    pacing_msgs_per_sec: float = _f("IBKR_PACING_MSGS_PER_SEC", 45.0,
                                    "Outbound request rate limit (IBKR allows 50/s)",
                                    gt=0, le=50)


class EarningsSettings(_Group):
    """Earnings data (spec 1.3)."""

    provider: str = _f("EARNINGS_PROVIDER", "auto",
                       "auto (the scenario on sim, yfinance on ibkr), scenario, yfinance, fmp",
                       pattern=r"^(auto|scenario|yfinance|fmp)$")
    fmp_api_key: SecretStr | None = _f("FMP_API_KEY", None, "Financial Modeling Prep API key")
    fmp_api_url: str = _f("FMP_API_URL", "https://financialmodelingprep.com",
                          "Financial Modeling Prep base URL")
    timeout_seconds: float = _f("EARNINGS_TIMEOUT_SECONDS", 15.0,
                                "Give up on an earnings provider after this long", ge=0.1, le=600)
    cache_hours: float = _f("EARNINGS_CACHE_HOURS", 24.0, "Earnings cache lifetime",
                            ge=0.01, le=8760)


class RiskSettings(_Group):
    """Risk governor limits (spec 2.1, 2.2, 6.1A, 6.2A, 6.4)."""

    max_daily_loss_pct: float = _f("MAX_DAILY_LOSS_PCT", -0.02,
                                   "Daily loss circuit breaker (negative fraction)", le=0, ge=-1)
    max_weekly_loss_pct: float = _f("MAX_WEEKLY_LOSS_PCT", -0.05,
                                    "Weekly loss circuit breaker (negative fraction)", le=0, ge=-1)
    max_drawdown_pct: float = _f("MAX_DRAWDOWN_PCT", -0.10,
                                 "Peak-to-trough drawdown breaker (negative fraction)", le=0, ge=-1)
    max_positions: int = _f("MAX_POSITIONS", 10, "Maximum open positions", ge=1, le=10_000)
    max_positions_per_symbol: int = _f("MAX_POSITIONS_PER_SYMBOL", 3,
                                       "Maximum open positions per underlying", ge=1, le=10_000)
    max_sector_concentration_pct: float = _f("MAX_SECTOR_CONCENTRATION_PCT", 0.30,
                                             "Maximum share of positions in one sector",
                                             gt=0, le=1)
    max_margin_utilization: float = _f("MAX_MARGIN_UTILIZATION", 0.80,
                                       "Maximum init margin / equity with loan after a trade",
                                       gt=0, le=1)
    max_margin_per_trade_pct: float = _f("MAX_MARGIN_PER_TRADE_PCT", 0.10,
                                         "Maximum margin impact of one trade, share of NLV",
                                         gt=0, le=1)
    excess_liquidity_reject_pct: float = _f("EXCESS_LIQUIDITY_REJECT_PCT", 0.10,
                                            "Reject when ExcessLiquidity < this share of NLV",
                                            ge=0, le=1)
    excess_liquidity_warn_pct: float = _f("EXCESS_LIQUIDITY_WARN_PCT", 0.20,
                                          "Warn when ExcessLiquidity < this share of NLV",
                                          ge=0, le=1)
    vix_halt_threshold: float = _f("VIX_HALT_THRESHOLD", 40.0,
                                   "No new positions when VIX exceeds this", gt=0, le=200)
    whatif_timeout_seconds: float = _f("WHATIF_TIMEOUT_SECONDS", 5.0,
                                       "What-if order timeout", ge=0.1, le=600)
    account_health_interval_minutes: float = _f("ACCOUNT_HEALTH_INTERVAL_MINUTES", 5.0,
                                                "Account health refresh interval", ge=0.01, le=5)

    _ranges = (("excess_liquidity_reject_pct", "excess_liquidity_warn_pct"),)


class SizingSettings(_Group):
    """Position sizing (spec 2.3A, 6.4)."""

    position_size: int = _f("POSITION_SIZE", 5, "Fixed contracts per trade (upper bound)",
                            ge=1, le=10_000)
    max_risk_per_trade_pct: float = _f("MAX_RISK_PER_TRADE_PCT", 0.02,
                                       "Equity share at risk per trade (enforced)", gt=0, le=1)
    practical_loss_pct: float = _f("SIZING_PRACTICAL_LOSS_PCT", 0.25,
                                   "Practical max loss per contract as share of strike",
                                   gt=0, le=1)
    vix_low: float = _f("VIX_LOW", 15.0, "Below: sizing factor VIX_FACTOR_LOW", gt=0, le=200)
    vix_normal: float = _f("VIX_NORMAL", 25.0, "Below: VIX_FACTOR_NORMAL", gt=0, le=200)
    vix_elevated: float = _f("VIX_ELEVATED", 35.0, "Below: VIX_FACTOR_ELEVATED; above: "
                             "VIX_FACTOR_EXTREME", gt=0, le=200)
    vix_factor_low: float = _f("VIX_FACTOR_LOW", 1.0, "Sizing factor, VIX < VIX_LOW", gt=0, le=1)
    vix_factor_normal: float = _f("VIX_FACTOR_NORMAL", 0.8, "Sizing factor, normal VIX",
                                  gt=0, le=1)
    vix_factor_elevated: float = _f("VIX_FACTOR_ELEVATED", 0.5, "Sizing factor, elevated VIX",
                                    gt=0, le=1)
    vix_factor_extreme: float = _f("VIX_FACTOR_EXTREME", 0.25, "Sizing factor, extreme VIX",
                                   gt=0, le=1)

    _ranges = (("vix_low", "vix_normal"), ("vix_normal", "vix_elevated"))


class ExecutionSettings(_Group):
    """Order execution (spec 3.2A, 3.2B, 3.4A, 3.4B)."""

    max_execution_spread_pct: float = _f("MAX_EXECUTION_SPREAD_PCT", 0.30,
                                         "Maximum spread / bid when placing an order", ge=0, le=10)
    price_deviation_warn_pct: float = _f("PRICE_DEVIATION_WARN_PCT", 0.20,
                                         "Warn when live limit deviates this much from staged",
                                         ge=0, le=10)
    price_deviation_reject_pct: float = _f("PRICE_DEVIATION_REJECT_PCT", 0.50,
                                           "Reject when live limit deviates this much", ge=0, le=10)
    max_premium_pct_of_strike: float = _f("MAX_PREMIUM_PCT_OF_STRIKE", 0.20,
                                          "Premium above this share of strike is suspicious",
                                          gt=0, le=1)
    open_time: str = _f("EXECUTION_OPEN_TIME", "09:30", "Staged orders execute at (ET, HH:MM)",
                        pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    open_delay_seconds: int = _f("EXECUTION_OPEN_DELAY_SECONDS", 60,
                                 "Delay after EXECUTION_OPEN_TIME before executing",
                                 ge=0, le=23_400)
    reprice_steps: int = _f("ORDER_REPRICE_STEPS", 3, "Reprice steps toward the bid", ge=0, le=10)
    reprice_interval_seconds: float = _f("ORDER_REPRICE_INTERVAL_SECONDS", 30.0,
                                         "Seconds between reprice steps", ge=0.01, le=3600)
    order_timeout_seconds: float = _f("ORDER_TIMEOUT_SECONDS", 300.0,
                                      "Cancel an unfilled order after this", ge=0.1, le=23_400)
    dry_run: bool = _f("DRY_RUN", False, "Go through every step but never send orders")
    auto_execute: bool = _f("EXECUTION_AUTO_AT_OPEN", True,
                            "Send orders staged before the open at EXECUTION_OPEN_TIME")
    order_lease_seconds: float = _f("PUTDESK_ORDER_LEASE_SECONDS", 15.0,
                                    "How long a working order's claim holds without its "
                                    "sender's heartbeat; past it another process adopts it",
                                    ge=3, le=600)

    _ranges = (("price_deviation_warn_pct", "price_deviation_reject_pct"),)


class MonitoringSettings(_Group):
    """Position monitoring (spec 4.2A, 4.2B, 4.4)."""

    interval_minutes: float = _f("MONITOR_INTERVAL_MINUTES", 15.0,
                                 "Position monitor interval", ge=1, le=1440)
    delta_warn: float = _f("DELTA_WARN", 0.30, "|delta| above: WARNING", gt=0, le=1)
    delta_critical: float = _f("DELTA_CRITICAL", 0.50, "|delta| above: CRITICAL", gt=0, le=1)
    underlying_drop_warn_pct: float = _f("UNDERLYING_DROP_WARN_PCT", 0.05,
                                         "Underlying drop from entry above: WARNING", gt=0, le=1)
    underlying_drop_critical_pct: float = _f("UNDERLYING_DROP_CRITICAL_PCT", 0.10,
                                             "Underlying drop from entry above: CRITICAL",
                                             gt=0, le=1)

    _ranges = (("delta_warn", "delta_critical"),
               ("underlying_drop_warn_pct", "underlying_drop_critical_pct"))


class ExitSettings(_Group):
    """Exit rules (profit target, stop loss, time exit)."""

    profit_target_pct: float = _f("PROFIT_TARGET_PCT", 0.50,
                                  "Close when this share of premium is captured", gt=0, le=1)
    stop_loss_pct: float = _f("STOP_LOSS_PCT", 2.00,
                              "Close when the loss reaches this multiple of premium", gt=0, le=100)
    time_exit_dte: int = _f("TIME_EXIT_DTE", 2, "Close at or below this DTE", ge=0, le=3650)
    zero_bid_action: str = _f("EXIT_ZERO_BID_ACTION", "buy",
                              "A put bid at 0: buy it back (walking to the ask) or let_expire "
                              "(profit and time exits only; stops always buy)",
                              pattern=r"^(buy|let_expire)$")


class RollSettings(_Group):
    """Defensive rolls (spec 5.3) and assignment handling (5.4)."""

    trigger_loss_pct: float = _f("ROLL_TRIGGER_LOSS_PCT", 1.50,
                                 "Consider a roll at this loss multiple of premium", gt=0, le=100)
    max_delta: float = _f("ROLL_MAX_DELTA", 0.50, "Roll only while |delta| is below", gt=0, le=1)
    max_rolls: int = _f("MAX_ROLLS", 2, "Maximum rolls per position", ge=0, le=100)
    max_dte: int = _f("ROLL_MAX_DTE", 60, "Latest expiration considered for a roll", ge=1, le=3650)
    assignment_response: str = _f("ASSIGNMENT_RESPONSE_MODE", "ALERT",
                                  "ALERT, SELL_IMMEDIATELY, COVERED_CALL or HOLD",
                                  pattern=r"^(ALERT|SELL_IMMEDIATELY|COVERED_CALL|HOLD)$")


class StressSettings(_Group):
    """Stress-test scenarios (spec 6.3)."""

    drop_small_pct: float = _f("STRESS_MARKET_DROP_SMALL_PCT", 0.05,
                               "market_drop_5pct: every underlying falls this much", gt=0, lt=1)
    drop_large_pct: float = _f("STRESS_MARKET_DROP_LARGE_PCT", 0.10,
                               "market_drop_10pct: every underlying falls this much", gt=0, lt=1)
    iv_points_per_pct: float = _f("STRESS_IV_POINTS_PER_PCT_DROP", 0.5,
                                  "Implied vol points added per 1% fall (0.5: -10% -> +5 pts)",
                                  ge=0, le=10)
    single_crash_pct: float = _f("STRESS_SINGLE_CRASH_PCT", 0.20,
                                 "single_stock_crash: one underlying falls this much", gt=0,
                                 lt=1)
    vix_spike_level: float = _f("STRESS_VIX_SPIKE_LEVEL", 35.0,
                                "vix_spike_35: IVs scale by this / current VIX", gt=0, le=200)
    crisis_drop_pct: float = _f("STRESS_CRISIS_DROP_PCT", 0.15,
                                "correlation_crisis: every underlying falls this much", gt=0,
                                lt=1)
    crisis_iv_mult: float = _f("STRESS_CRISIS_IV_MULT", 1.8,
                               "correlation_crisis: IVs multiply by this", ge=1, le=10)
    risk_free_rate: float = _f("STRESS_RISK_FREE_RATE", 0.04,
                               "Risk-free rate the stress test prices with (0.04 = 4%); "
                               "implied vols are solved from the marks at this rate",
                               ge=-0.05, le=0.25)


class NotifySettings(_Group):
    """Notifications (spec 8.3)."""

    email_to: str | None = _f("NOTIFY_EMAIL_TO", None, "Comma-separated recipients")
    email_from: str = _f("NOTIFY_EMAIL_FROM", "putdesk@localhost", "Sender address")
    smtp_host: str | None = _f("SMTP_HOST", None, "SMTP server")
    smtp_port: int = _f("SMTP_PORT", 587, "SMTP port", ge=1, le=65535)
    smtp_user: str | None = _f("SMTP_USER", None, "SMTP user")
    smtp_password: SecretStr | None = _f("SMTP_PASSWORD", None, "SMTP password")
    smtp_security: str = _f("SMTP_SECURITY", "starttls", "starttls, ssl or none",
                            pattern=r"^(starttls|ssl|none)$")
    webhook_url: SecretStr | None = _f("NOTIFY_WEBHOOK_URL", None,
                                       "Slack/Discord/JSON webhook URL (secret)")
    webhook_kind: str = _f("NOTIFY_WEBHOOK_KIND", "auto", "auto, slack, discord or json",
                           pattern=r"^(auto|slack|discord|json)$")
    emergency_repeat_minutes: float = _f("NOTIFY_EMERGENCY_REPEAT_MINUTES", 5.0,
                                         "Repeat EMERGENCY notifications this often",
                                         ge=0.001, le=1440)
    emergency_max_repeats: int = _f("NOTIFY_EMERGENCY_MAX_REPEATS", 12,
                                    "Stop repeating after this many", ge=0, le=1000)


class BrokerKind(enum.StrEnum):
    PAPER = "paper"
    SIM = "sim"
    IBKR = "ibkr"


class IBKRSettings(_Group):
    """Connection to TWS / IB Gateway."""

    host: str = _f("PUTDESK_IBKR_HOST", "127.0.0.1", "TWS / IB Gateway host")
    port: int = _f("PUTDESK_IBKR_PORT", 7497, "7497 TWS paper, 7496 TWS live, "
                   "4002 Gateway paper, 4001 Gateway live", ge=1, le=65535)
    client_id: int = _f("PUTDESK_IBKR_CLIENT_ID", 17, "API client id (fixed per instance so a "
                        "reconnect reclaims its orders)", ge=0, le=2**31 - 1)
    account: str = _f("PUTDESK_IBKR_ACCOUNT", "", "Account id (empty: the only managed one)")
    read_only: bool = _f("PUTDESK_IBKR_READONLY", False, "Connect in API read-only mode")
    market_data_type: int = _f("PUTDESK_IBKR_MARKET_DATA_TYPE", 1,
                               "1 live, 2 frozen, 3 delayed, 4 delayed-frozen", ge=1, le=4)
    connect_timeout_seconds: float = _f("PUTDESK_IBKR_CONNECT_TIMEOUT", 10.0,
                                        "Connect timeout", ge=0.1, le=600)
    reconnect_max_seconds: float = _f("PUTDESK_IBKR_RECONNECT_MAX_SECONDS", 60.0,
                                      "Longest wait between reconnect attempts", ge=0.1, le=3600)
    request_timeout_seconds: float = _f("PUTDESK_IBKR_REQUEST_TIMEOUT", 10.0,
                                        "Longest wait for any TWS answer", ge=0.1, le=600)
    market_data_timeout_seconds: float = _f("PUTDESK_IBKR_MARKET_DATA_TIMEOUT", 4.0,
                                            "Longest wait for a quote's fields (bid, ask, "
                                            "model greeks)", ge=0.1, le=600)
    history_timeout_seconds: float = _f("PUTDESK_IBKR_HISTORY_TIMEOUT", 30.0,
                                        "Longest wait for historical IV bars", ge=0.1, le=600)


class AppSettings(_Group):
    """PutDesk itself: broker choice, simulator, database, logging."""

    broker: BrokerKind = _f("PUTDESK_BROKER", BrokerKind.PAPER,
                            "paper (one simulated account for every PutDesk process of this "
                            "data directory), sim (in-process simulator, for tests) or ibkr")
    sim_scenario: Path | None = _f("PUTDESK_SIM_SCENARIO", None,
                                   "Simulator scenario file (default: the shipped demo)")
    scenario_max_mb: float = _f("PUTDESK_SCENARIO_MAX_MB", 16.0,
                                "Largest simulator scenario file accepted (MB)",
                                ge=0.001, le=1024)
    sim_seed: int = _f("PUTDESK_SIM_SEED", 7, "Simulator random seed", ge=0, le=2**32 - 1)
    sim_rate: float = _f("PUTDESK_SIM_RISK_FREE_RATE", 0.04, "Simulator risk-free rate",
                         ge=0, le=0.2)
    database_url: SecretStr | None = _f("PUTDESK_DATABASE_URL", None,
                                        "SQLAlchemy URL; default: SQLite in the user data dir")
    kill_switch_sync_seconds: float = _f("PUTDESK_KILL_SWITCH_SYNC_SECONDS", 2.0,
                                         "How often the halt flag is re-read from the database",
                                         ge=0.05, le=5)
    log_file: Path | None = _f("PUTDESK_LOG_FILE", None,
                               "Log file (default: putdesk.log in the user data dir)")
    log_level: str = _f("PUTDESK_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING, ERROR",
                        pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    read_only: bool = _f("PUTDESK_READ_ONLY", False,
                         "Read-only console (a second operator watching): this process sends "
                         "no orders, stages, cancels, rolls, closes or resumes; halting "
                         "(ctrl+k) stays allowed. Same as `putdesk --read-only`")


GROUPS: dict[str, type[_Group]] = {
    "screener": ScreenerSettings,
    "validation": ValidationSettings,
    "earnings": EarningsSettings,
    "risk": RiskSettings,
    "sizing": SizingSettings,
    "execution": ExecutionSettings,
    "stress": StressSettings,
    "monitoring": MonitoringSettings,
    "exits": ExitSettings,
    "rolls": RollSettings,
    "notify": NotifySettings,
    "ibkr": IBKRSettings,
    "app": AppSettings,
}


class Settings(BaseModel):
    """All settings. Build with `load_settings()`; tests may pass overrides."""

    screener: ScreenerSettings
    validation: ValidationSettings
    earnings: EarningsSettings
    risk: RiskSettings
    sizing: SizingSettings
    execution: ExecutionSettings
    monitoring: MonitoringSettings
    exits: ExitSettings
    rolls: RollSettings
    stress: StressSettings
    notify: NotifySettings
    ibkr: IBKRSettings
    app: AppSettings


def _describe(group: type[_Group], err: ValidationError) -> str:
    problems = []
    for e in err.errors():
        loc = e.get("loc") or ()
        names = {env_name(group, f) for f in group.model_fields}
        if loc and isinstance(loc[0], str) and (loc[0] in names or loc[0] in group.model_fields):
            name = loc[0] if loc[0] in names else env_name(group, loc[0])
            problems.append(f"{name}={e.get('input')!r}: {e['msg']}")
        else:
            problems.append(e["msg"].removeprefix("Value error, "))
    return "; ".join(problems)


def load_settings(overrides: dict[str, Any] | None = None, env_file: str | None = None) -> Settings:
    """Read every group. `overrides` maps ENV_NAME -> value (wins over the environment).

    The .env file is `env_file`, else $PUTDESK_ENV_FILE, else ./.env when it exists.
    """
    overrides = {k.upper(): v for k, v in (overrides or {}).items()}
    known = {env_name(g, f) for g in GROUPS.values() for f in g.model_fields}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    wanted = env_file or os.environ.get("PUTDESK_ENV_FILE") or ".env"
    env_path = wanted if Path(wanted).is_file() else None
    values: dict[str, _Group] = {}
    for key, group in GROUPS.items():
        mine = {env_name(group, f): overrides[env_name(group, f)]
                for f in group.model_fields if env_name(group, f) in overrides}
        try:
            values[key] = group(_env_file=env_path, **mine)
        except ValidationError as err:
            raise ConfigError(f"invalid setting: {_describe(group, err)}") from None
    settings = Settings(**values)
    # Secrets known to this process are redacted from every output from now on, whether
    # or not this process set up logging (core.redaction).
    from core.redaction import register, secret_values

    register(secret_values(settings))
    return settings


def all_settings_defaults() -> list[tuple[str, str, Any, str]]:
    """(group, ENV_NAME, default, description) for every setting, in declaration order."""
    rows = []
    for key, group in GROUPS.items():
        for fname, finfo in group.model_fields.items():
            rows.append((key, env_name(group, fname), finfo.default, finfo.description or ""))
    return rows


def env_example_text() -> str:
    """The text of `.env.example` (regenerate: python -m core.config > .env.example)."""
    lines = ["# PutDesk settings: every variable with its default. Copy to .env and edit.",
             "# Secrets (API keys, passwords, webhook URLs) belong in .env, never in git."]
    current = ""
    for group, name, default, description in all_settings_defaults():
        if group != current:
            current = group
            title = (GROUPS[group].__doc__ or group).splitlines()[0]
            lines += ["", f"# --- {title}"]
        value = "" if default is None else (default.value if isinstance(default, enum.Enum)
                                            else str(default).lower()
                                            if isinstance(default, bool) else default)
        lines.append(f"# {description}")
        lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(env_example_text(), end="")
