"""MarginChecker: account health (spec 4.4, 6.2A) and a trade's margin impact in two
layers (spec 2.1A, 2.1C).

Layer 1 is IBKR's published short-put rule applied locally: a fast reject for trades
that are obviously over a limit. Layer 2 is the broker's what-if order, IBKR's own
answer. When the what-if fails or times out the estimate stands in, and only with a
prominent warning: in the log, in the check's reason and through `on_fallback` (the
engine forwards it to the notifier).
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

from core.broker.base import (
    AccountValues,
    Broker,
    BrokerError,
    OrderRequest,
    OrderType,
    WhatIfMargin,
)
from core.clock import NEW_YORK, Clock
from core.config import Settings
from core.db.repos import EquityRepo
from core.market.calendar import MarketCalendar, default_calendar
from core.market.pricing import ibkr_short_option_margin, is_broad_index
from core.models import CheckResult, Opportunity, WhatIfResult
from core.risk.figures import pct_vs

log = logging.getLogger("putdesk.risk.margin")

FALLBACK_TEXT = "WhatIf unavailable, using estimate — proceed with caution"
#: Anything this large is IBKR's "unset" double (1.7976931348623157E308) or garbage.
_IMPLAUSIBLE = 1e300

HealthStatus = Literal["healthy", "warning", "danger", "unknown"]


def clean(value: float | None) -> float | None:
    """A broker figure, or None when it is unset (sentinel, nan, inf)."""
    if value is None or math.isnan(value) or math.isinf(value) or abs(value) >= _IMPLAUSIBLE:
        return None
    return value


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), NEW_YORK)


def positive(value: float | None) -> float | None:
    """A figure that can be divided by: set, finite and above zero (NetLiquidation)."""
    value = clean(value)
    return value if value is not None and value > 0 else None


def money(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


@dataclass(frozen=True)
class Baselines:
    """One account's equity reference points from the database (spec 6.1A): the previous
    session's closing NetLiquidation (daily), the last close of the previous week
    (weekly) and the highest equity recorded (drawdown). Where no close was recorded the
    first equity seen since stands in, and `day_note` / `week_note` say so."""

    day_start: float | None
    week_start: float | None
    peak: float | None
    day_label: str = "previous close"
    week_label: str = "previous week's close"
    day_note: str = ""
    week_note: str = ""


@dataclass(frozen=True)
class AccountHealth:
    values: AccountValues
    checked_at: datetime
    baselines: Baselines
    reject_pct: float
    warn_pct: float

    @property
    def net_liquidation(self) -> float | None:
        """NetLiquidation when it is a usable figure (set, finite, above zero), else None:
        nothing is measured against an account worth nothing or less."""
        return positive(self.values.net_liquidation)

    @property
    def nlv_text(self) -> str:
        raw = self.values.net_liquidation
        return "not reported" if raw is None else (
            money(raw) if clean(raw) is not None else repr(raw))

    @property
    def excess_ratio(self) -> float | None:
        el, nlv = clean(self.values.excess_liquidity), self.net_liquidation
        return el / nlv if el is not None and nlv is not None else None

    @property
    def utilization(self) -> float | None:
        init, elv = clean(self.values.init_margin_req), positive(self.values.equity_with_loan)
        return init / elv if init is not None and elv is not None else None

    @property
    def status(self) -> HealthStatus:
        ratio = self.excess_ratio
        if ratio is None:
            return "unknown"
        if ratio < self.reject_pct:
            return "danger"
        if ratio < self.warn_pct:
            return "warning"
        return "healthy"


@dataclass(frozen=True)
class PostTradeMargin:
    """Spec 2.1B: the account right after a fill."""

    available_funds: float | None
    excess_liquidity: float | None
    net_liquidation: float | None
    utilization: float | None
    is_healthy: bool
    warning: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"available_funds": self.available_funds,
                "excess_liquidity": self.excess_liquidity,
                "net_liquidation": self.net_liquidation, "utilization": self.utilization,
                "is_healthy": self.is_healthy, "warning": self.warning}


class MarginChecker:
    def __init__(self, broker: Broker, settings: Settings, clock: Clock, equity: EquityRepo,
                 on_fallback: Callable[[str], None] | None = None,
                 calendar: MarketCalendar | None = None) -> None:
        self.broker = broker
        self.calendar = calendar or default_calendar()
        self.risk = settings.risk
        self.clock = clock
        self.equity = equity
        self.on_fallback = on_fallback
        self.health: AccountHealth | None = None
        self.max_age = timedelta(minutes=self.risk.account_health_interval_minutes)

    # --- account health (spec 4.4: one account request, cached) -------------------------

    async def check_account_health(self, fresh: bool = False) -> AccountHealth:
        """One account-values request; records equity and reloads the baselines.
        Raises BrokerError when the broker cannot answer (the cache is kept)."""
        values = await self.broker.account_values(fresh=fresh)
        now = self.clock.now()
        baselines = await asyncio.to_thread(self._record_and_load, now, values)
        self.health = AccountHealth(values, now, baselines, self.risk.excess_liquidity_reject_pct,
                                    self.risk.excess_liquidity_warn_pct)
        return self.health

    def _record_and_load(self, now: datetime, values: AccountValues) -> Baselines:
        """Record this equity (as the session's close when it is the first figure at or
        after today's close) and load the account's baselines."""
        account = values.account_id or ""
        nlv = positive(values.net_liquidation)
        ny = now.astimezone(NEW_YORK)
        today = ny.date()
        cal = self.calendar
        hours = cal.open_close(today)
        if nlv is not None:
            closing = (hours is not None and ny >= hours[1]
                       and self.equity.last_close(account, today, today) is None)
            self.equity.record(now, nlv, source="close" if closing else "broker",
                               excess_liquidity=clean(values.excess_liquidity), account=account)
        # The session whose P&L this is: today's (also after its close), else the next.
        session = today
        while not cal.is_session(session):
            session += timedelta(days=1)
        previous = cal.previous_session(session - timedelta(days=1))
        prev_hours = cal.open_close(previous)
        since_prev = prev_hours[1] if prev_hours else _midnight(previous + timedelta(days=1))
        day, day_note = self._baseline(account, previous, previous, since_prev,
                                       f"session {previous}")
        monday = session - timedelta(days=session.weekday())
        week, week_note = self._baseline(account, monday - timedelta(days=7),
                                         monday - timedelta(days=1), _midnight(monday),
                                         f"the week before {monday}")
        return Baselines(day, week, self.equity.peak_equity(account),
                         day_label=f"{previous} close", week_label="previous week's close",
                         day_note=day_note, week_note=week_note)

    def _baseline(self, account: str, first: date, last: date, since: datetime,
                  period: str) -> tuple[float | None, str]:
        close = self.equity.last_close(account, first, last)
        if close is not None:
            return close[1], ""
        seen = self.equity.first_since(account, since)
        if seen is None:
            return None, f"no close recorded for {period} and no equity seen since"
        at = seen[0].astimezone(NEW_YORK)
        note = (f"no close recorded for {period}: baseline is the first equity seen since, "
                f"{money(seen[1])} at {at:%Y-%m-%d %H:%M} ET")
        return seen[1], note

    async def account_health(self) -> AccountHealth | None:
        """The cached health if younger than ACCOUNT_HEALTH_INTERVAL_MINUTES, else a fresh
        one; None when there is none and the broker cannot give one."""
        cached = self.health
        if cached is not None and self.clock.now() - cached.checked_at <= self.max_age:
            return cached
        try:
            return await self.check_account_health()
        except BrokerError as exc:
            log.warning("Account health check failed: %s", exc)
            return None

    async def verify_post_trade_margin(self) -> PostTradeMargin:
        """Poll the account after a fill (spec 2.1B). Unhealthy when ExcessLiquidity is
        below EXCESS_LIQUIDITY_REJECT_PCT of NetLiquidation — or when the broker cannot
        say: after a fill, not knowing is not safe."""
        try:
            # Fresh: IBKR's account-summary subscription refreshes every 3 minutes, so a
            # cached one would judge the account as it was before the fill.
            health = await self.check_account_health(fresh=True)
        except BrokerError as exc:
            log.error("Post-trade margin: account unavailable (%s)", exc)
            return PostTradeMargin(None, None, None, None, False,
                                   f"account values unavailable after the fill: {exc}")
        v = health.values
        avail, excess = clean(v.available_funds), clean(v.excess_liquidity)
        util, ratio = health.utilization, health.excess_ratio
        log.info("Post-trade margin: AvailFunds=%s, ExcessLiq=%s, Util=%s", money(avail),
                 money(excess), "n/a" if util is None else f"{util:.1%}")
        if ratio is None:
            why = ("ExcessLiquidity not reported" if health.net_liquidation is not None
                   else f"NetLiquidation {health.nlv_text} is not a usable positive figure")
            log.error("Post-trade margin: %s", why)
            return PostTradeMargin(avail, excess, health.net_liquidation, util, False, why)
        if ratio < self.risk.excess_liquidity_reject_pct:
            text = (f"ExcessLiquidity {pct_vs(ratio, self.risk.excess_liquidity_reject_pct)} "
                    f"of NLV after the fill (danger below "
                    f"{self.risk.excess_liquidity_reject_pct:.0%})")
            log.critical("Post-trade margin danger: %s", text)
            return PostTradeMargin(avail, excess, health.net_liquidation, util, False, text)
        warning = ""
        if ratio < self.risk.excess_liquidity_warn_pct:
            warning = f"ExcessLiquidity {ratio:.1%} of NLV after the fill"
            log.warning("Post-trade margin low: %s", warning)
        return PostTradeMargin(avail, excess, health.net_liquidation, util, True, warning)

    # --- a trade's margin ------------------------------------------------------------------

    def estimate(self, opportunity: Opportunity, underlying: float | None) -> float | None:
        """Layer 1: IBKR's short-put rule for the whole trade; None when unpriceable.
        A trade sized to 0 (VIX halt) is measured at 1 contract, so the margin check
        still shows its figures and the VIX check is the one that decides."""
        if opportunity.premium is None or underlying is None:
            return None
        per_contract = float(ibkr_short_option_margin(
            underlying, opportunity.strike, opportunity.premium, "P",
            is_broad_index(opportunity.symbol)))
        return per_contract * max(opportunity.contracts, 1)

    def whatif_order(self, opportunity: Opportunity) -> OrderRequest:
        ref = f"whatif-{uuid.uuid4().hex[:12]}"
        return OrderRequest("SELL", max(opportunity.contracts, 1), ref, opportunity.contract,
                            order_type=OrderType.LIMIT, limit_price=opportunity.premium)

    async def check_whatif_margin(self, opportunity: Opportunity, health: AccountHealth | None,
                                  underlying: float | None, *, whatif: bool = True
                                  ) -> tuple[CheckResult, WhatIfResult]:
        """Layer 1 then Layer 2. Returns the margin check and the figures it used."""
        limits = self.risk
        estimate = self.estimate(opportunity, underlying)
        values = health.values if health else None
        nlv = health.net_liquidation if health else None
        init_now = clean(values.init_margin_req) if values else None
        elv_now = clean(values.equity_with_loan) if values else None
        available = clean(values.available_funds) if values else None
        cap = nlv * limits.max_margin_per_trade_pct if nlv is not None else None
        if nlv is None:
            what = ("unavailable" if health is None or health.values.net_liquidation is None
                    else f"{health.nlv_text} is not a usable positive figure")
            return self._fail(f"NetLiquidation {what}: the per-trade margin cap cannot be "
                              "checked", estimate, cap, init_now)
        if estimate is None:
            why = ("no premium (the option has no quote)" if opportunity.premium is None
                   else "no underlying price")
            return self._fail(f"Margin cannot be estimated: {why}", estimate, cap, init_now)

        # Layer 1: fast reject on the estimate.
        layer1 = self._limits(estimate, cap, init_now, elv_now, available, None)
        if layer1 is not None:
            log.info("WhatIf margin: estimated=%s, actual=n/a (Layer 1 rejected), delta=n/a",
                     money(estimate))
            return self._fail(f"Estimate: {layer1}", estimate, cap, init_now,
                              fallback="Layer 1 estimate rejected; what-if not sent")

        if not whatif:
            result = self._estimate_result(estimate, cap, init_now, elv_now,
                                           "what-if not requested (preview)")
            return (CheckResult("margin", "pass", f"Estimated margin {money(estimate)} within "
                                f"cap {money(cap)} (preview: no what-if)", result.as_dict()),
                    result)

        # Layer 2: the broker's what-if.
        problem, wi = await self._whatif(opportunity)
        before = after = None
        if wi is not None:
            before = clean(wi.init_margin_before)
            before = before if before is not None else init_now
            after = clean(wi.init_margin_after)
            if after is None or before is None:
                problem = "the broker left the initial margin figures unset"
        if problem is not None or wi is None or after is None or before is None:
            reason = f"{FALLBACK_TEXT} ({problem})"
            log.warning("%s: %s for %s", FALLBACK_TEXT, problem, opportunity.label)
            log.info("WhatIf margin: estimated=%s, actual=n/a, delta=n/a", money(estimate))
            if self.on_fallback is not None:
                try:
                    self.on_fallback(f"{reason}: {opportunity.label}")
                except Exception:
                    log.exception("WhatIf fallback hook failed")
            result = self._estimate_result(estimate, cap, init_now, elv_now, problem or "")
            return CheckResult("margin", "warn", f"{reason}; estimated margin {money(estimate)} "
                               f"within cap {money(cap)}", result.as_dict()), result

        impact = after - before
        elv_after = clean(wi.equity_with_loan_after)
        elv_after = elv_after if elv_after is not None else elv_now
        util_after = after / elv_after if elv_after is not None and elv_after > 0 else None
        log.info("WhatIf margin: estimated=%s, actual=%s, delta=%s", money(estimate),
                 money(impact), money(impact - estimate))
        result = WhatIfResult("whatif", estimate, before, after, impact,
                              clean(wi.maint_margin_after), elv_after, clean(wi.commission),
                              cap, util_after)
        problem = self._limits(impact, cap, before, elv_after, available, util_after)
        if problem is not None:
            return CheckResult("margin", "fail", problem, result.as_dict()), result
        util_text = f"{util_after:.0%}" if util_after is not None else "n/a"
        return CheckResult("margin", "pass", f"WhatIf margin impact {money(impact)} within cap "
                           f"{money(cap)}; utilisation after {util_text} (limit "
                           f"{limits.max_margin_utilization:.0%})", result.as_dict()), result

    async def _whatif(self, opportunity: Opportunity) -> tuple[str | None, WhatIfMargin | None]:
        timeout = self.risk.whatif_timeout_seconds
        try:
            wi = await asyncio.wait_for(self.broker.what_if(self.whatif_order(opportunity)),
                                        timeout)
        except TimeoutError:
            return f"no answer within {timeout:g} s", None
        except BrokerError as exc:
            return f"broker error: {exc}", None
        return None, wi

    def _limits(self, impact: float, cap: float | None, init_before: float | None,
                elv: float | None, available: float | None, util_after: float | None
                ) -> str | None:
        """The first margin limit `impact` breaks, as the operator's reason; None if none."""
        limits = self.risk
        if cap is not None and impact > cap:
            text = (f"Trade rejected: margin impact {money(impact)} exceeds "
                    f"{limits.max_margin_per_trade_pct:.0%} cap ({money(cap)})")
            log.warning(text)
            return text
        if available is not None and impact > available:
            return f"Margin impact {money(impact)} exceeds AvailableFunds {money(available)}"
        if elv is not None and elv <= 0:
            return (f"EquityWithLoanValue {money(elv)} is not positive: margin utilisation "
                    "cannot be measured")
        if util_after is None and init_before is not None and elv:
            util_after = (init_before + impact) / elv
        if util_after is not None and util_after > limits.max_margin_utilization:
            return (f"Margin utilisation after the trade "
                    f"{pct_vs(util_after, limits.max_margin_utilization, 0)} exceeds "
                    f"{limits.max_margin_utilization:.0%} limit")
        return None

    def _estimate_result(self, estimate: float, cap: float | None, init_now: float | None,
                         elv_now: float | None, why: str) -> WhatIfResult:
        after = init_now + estimate if init_now is not None else None
        util = after / elv_now if after is not None and elv_now and elv_now > 0 else None
        return WhatIfResult("estimate", estimate, init_now, after, estimate, None, elv_now, None,
                            cap, util, fallback_reason=why)

    def _fail(self, reason: str, estimate: float | None, cap: float | None,
              init_now: float | None, fallback: str = "") -> tuple[CheckResult, WhatIfResult]:
        result = WhatIfResult("estimate", estimate, init_now, None, estimate, None, None, None,
                              cap, None, fallback_reason=fallback or reason)
        return CheckResult("margin", "fail", reason, result.as_dict()), result
