"""The screening pipeline: source -> filters -> earnings gate -> IBKR validation -> scores.

The same path for a Barchart CSV and the Barchart API. Every candidate that does not
make it carries a Rejection with its stage and reason; nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from core.broker.base import Broker, BrokerError
from core.clock import Clock, new_york
from core.config import Settings
from core.market.earnings import EarningsService
from core.models import Candidate, Rejection
from core.screening.barchart_csv import read_barchart_csv
from core.screening.filters import apply_filters
from core.screening.scoring import score
from core.screening.validator import Validator

log = logging.getLogger("putdesk.screening")

Progress = Callable[[str, int, int], None]


@dataclass
class ScanResult:
    accepted: list[Candidate] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    snapshot_time: datetime | None = None
    source: str = ""


class ScreeningPipeline:
    def __init__(self, broker: Broker, earnings: EarningsService, settings: Settings,
                 clock: Clock) -> None:
        self.broker = broker
        self.earnings = earnings
        self.settings = settings
        self.clock = clock

    def today(self) -> date:
        return new_york(self.clock.now()).date()

    async def scan_csv(self, path: Path, progress: Progress | None = None) -> ScanResult:
        """Parse and screen a Barchart export. BarchartCsvError if the file is unusable."""
        parsed = await asyncio.to_thread(read_barchart_csv, path, today=self.today(),
                                         now=self.clock.now(),
                                         stale_hours=self.settings.screener.stale_file_hours)
        for issue in parsed.errors:
            log.warning("%s line %d skipped: %s", path.name, issue.line, issue.reason)
        result = await self.run(parsed.candidates, progress)
        result.rejected[:0] = parsed.rejections()
        result.warnings[:0] = parsed.warnings
        result.snapshot_time = parsed.snapshot_time
        result.source = str(path)
        return result

    async def run_source(self, source: ScanResult, progress: Progress | None = None
                         ) -> ScanResult:
        """Screen what a source (e.g. the API scanner) produced, keeping its rejections."""
        result = await self.run(source.accepted, progress)
        result.rejected[:0] = source.rejected
        result.warnings[:0] = source.warnings
        result.source = source.source
        return result

    async def run(self, candidates: list[Candidate], progress: Progress | None = None
                  ) -> ScanResult:
        result = ScanResult()
        passed, rejected, notes = apply_filters(candidates, self.settings.screener)
        result.rejected += rejected
        result.warnings += notes
        passed, rejected = await self._earnings_gate(passed, progress)
        result.rejected += rejected
        validator = Validator(self.broker, self.settings.validation)
        passed, rejected = await validator.validate(
            passed, (lambda d, t: progress("validation", d, t)) if progress else None)
        result.rejected += rejected
        try:
            held = await self.broker.positions()
        except BrokerError as exc:
            held = []
            result.warnings.append(f"positions unavailable ({exc}): scores carry no "
                                   "diversification penalty")
        rate = self.settings.app.sim_rate
        scored = [score(c, held, self.settings.risk, self.settings.validation, rate)
                  for c in passed]
        result.accepted = sorted(scored, key=lambda c: (-(c.score or 0), c.symbol, c.strike))
        return result

    async def _earnings_gate(self, candidates: list[Candidate], progress: Progress | None
                             ) -> tuple[list[Candidate], list[Rejection]]:
        """Spec 1.3, point 1: earnings on or before expiration exclude the candidate."""
        passed: list[Candidate] = []
        rejected: list[Rejection] = []
        for i, c in enumerate(candidates, start=1):
            check = await self.earnings.get_cached_earnings(c.symbol, c.expiration)
            if progress is not None:
                progress("earnings", i, len(candidates))
            if check is None:
                passed.append(c.but(earnings_known=False).with_warning(
                    "WARNING: earnings data unavailable"))
                continue
            if check.earnings_in_dte:
                reason = (f"BLOCKED: {c.symbol} has earnings on {check.earnings_date}, "
                          "within DTE window")
                log.warning(reason)
                rejected.append(Rejection.of(c, "earnings", reason))
                continue
            passed.append(c.but(earnings_known=True, earnings_date=check.earnings_date))
        return passed, rejected
