"""PositionSizer (spec 2.3A fixed fractional, 6.4 VIX-aware).

contracts = min(fixed size, floor(equity x MAX_RISK_PER_TRADE_PCT / (strike x 0.25 x 100))),
at least 1 (a WARN check in the governor states what that one contract risks when the
risk-based size is 0); then x the VIX factor (rounded down, at least 1); above VIX_HALT_THRESHOLD
no new positions (0). An operator's requested count can only lower the result.

Missing inputs are never guessed upward: no equity -> 1 contract (the floor); no VIX ->
the extreme-VIX factor, so an unknown regime sizes as the most dangerous one.
"""

from __future__ import annotations

import logging
import math

from core.config import Settings
from core.models import Opportunity, SizingResult

log = logging.getLogger("putdesk.risk.sizing")


class PositionSizer:
    def __init__(self, settings: Settings) -> None:
        self.sizing = settings.sizing
        self.vix_halt = settings.risk.vix_halt_threshold

    def vix_factor(self, vix: float | None) -> float:
        s = self.sizing
        if vix is None:
            return s.vix_factor_extreme
        if vix < s.vix_low:
            return s.vix_factor_low
        if vix < s.vix_normal:
            return s.vix_factor_normal
        if vix <= s.vix_elevated:  # spec 6.4: "above 35" is extreme, so 35 is elevated
            return s.vix_factor_elevated
        return s.vix_factor_extreme

    def calculate(self, opportunity: Opportunity, equity: float | None,
                  vix: float | None, *, quiet: bool = False) -> SizingResult:
        s = self.sizing
        fixed = s.position_size
        loss_per_contract = opportunity.strike * s.practical_loss_pct * 100
        if equity is not None and not 0 < equity < math.inf:
            equity = None  # a NetLiquidation of 0 or less sizes nothing: treated as unknown
        max_risk = equity * s.max_risk_per_trade_pct if equity is not None else None
        risk_based = (math.floor(max_risk / loss_per_contract)
                      if max_risk is not None and loss_per_contract > 0 else None)
        base = max(1, min(fixed, risk_based if risk_based is not None else 1))
        factor = self.vix_factor(vix)
        # The spec's two log lines as one text: the governor writes it in its decision's
        # record (a sizing comes with every pre-trade check, thousands a second, and
        # each record is a file write); alone, the sizer logs it itself.
        log_text = (f"Position size: {base} contracts (fixed={fixed}, risk-based="
                    f"{risk_based if risk_based is not None else 'n/a (no equity)'}, using "
                    f"min); VIX={f'{vix:.2f}' if vix is not None else 'n/a'}, sizing "
                    f"adjustment={factor:g}x")
        if not quiet:
            log.info("%s", log_text)
        contracts = max(1, math.floor(base * factor + 1e-9))
        parts = [f"min(fixed {fixed}, risk-based "
                 + (f"{risk_based} = floor(${max_risk:,.0f} / ${loss_per_contract:,.0f})"
                    if risk_based is not None and max_risk is not None
                    else "n/a: equity unknown")
                 + (f") = {base}" if risk_based is None or risk_based >= 1
                    else f") = 0, raised to the minimum of {base}")]
        if vix is None:
            parts.append(f"VIX unavailable: extreme factor {factor:g}x -> {contracts}")
        else:
            parts.append(f"VIX {vix:.1f} factor {factor:g}x -> {contracts}")
        requested = opportunity.requested_contracts
        if requested is not None and requested < contracts:
            contracts = requested
            parts.append(f"operator asked for {requested}")
        elif requested is not None and requested > contracts:
            parts.append(f"operator asked for {requested}: capped at {contracts} by sizing")
        halted = vix is not None and vix > self.vix_halt
        if halted:
            contracts = 0
            parts.append(f"VIX above {self.vix_halt:g}: no new positions")
        return SizingResult(contracts, fixed, risk_based, equity, max_risk, loss_per_contract,
                            vix, factor, requested, halted, "; ".join(parts), log_text)
