"""The screening pipeline: source -> filters -> earnings gate -> IBKR validation -> scores.

The same path for a Barchart CSV and the Barchart API. Every candidate that does not
make it carries a Rejection with its stage and reason; nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from core.broker.base import Broker, BrokerError
from core.clock import Clock, new_york
from core.config import Settings
from core.market.earnings import EarningsService
from core.models import Candidate, Rejection
from core.screening.barchart_csv import RowIssue
from core.screening.columnar import CsvScreen, screen_csv_file
from core.screening.filters import apply_filters
from core.screening.scoring import score_all
from core.screening.validator import Validator

log = logging.getLogger("putdesk.screening")
#: What a row error says, its cell values and counts left out: one log line per kind.
_VALUES = re.compile(r"'[^']*'(?!:)|\b\d+(?:\.\d+)?\b")

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
        """Parse and screen a Barchart export. BarchartCsvError if the file is unusable
        (not a regular file, over PUTDESK_CSV_MAX_MB, not an export ...)."""
        screener = self.settings.screener
        def read() -> CsvScreen:
            screen = screen_csv_file(path, today=self.today(), now=self.clock.now(),
                                     stale_hours=screener.stale_file_hours, settings=screener,
                                     max_bytes=int(screener.csv_max_mb * 1_000_000))
            # Every consumer (the JSON, the screen, the audit) reads each candidate and
            # rejection: built here, off the event loop, rather than on first read.
            screen.passed, screen.rejected = list(screen.passed), list(screen.rejected)
            return screen

        screen = await asyncio.to_thread(read)
        log_row_errors(path.name, screen.errors)
        result = await self._after_filters(list(screen.passed), progress)
        result.rejected[:0] = screen.rejected
        result.warnings[:0] = [*screen.warnings, *screen.notes]
        result.snapshot_time = screen.snapshot_time
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
        passed, rejected, notes = apply_filters(candidates, self.settings.screener)
        result = await self._after_filters(passed, progress)
        result.rejected[:0] = rejected
        result.warnings[:0] = notes
        return result

    async def _after_filters(self, passed: list[Candidate], progress: Progress | None
                             ) -> ScanResult:
        """Earnings gate, IBKR validation and scores for candidates past the filters."""
        result = ScanResult()
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
        scored = score_all(passed, held, self.settings.risk, self.settings.validation, rate)
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


def log_row_errors(source: str, errors: list[RowIssue]) -> None:
    """Rows that could not be read: one WARNING per kind of reason with the count and the
    first lines (a damaged export can have thousands), each row at DEBUG. Every row is
    still in the scan's rejections."""
    kinds: dict[str, list[int]] = {}
    for issue in errors:
        kinds.setdefault(_VALUES.sub("…", issue.reason), []).append(issue.line)
        log.debug("%s line %d skipped: %s", source, issue.line, issue.reason)
    for kind, lines in kinds.items():
        shown = ", ".join(str(n) for n in lines[:5]) + (", …" if len(lines) > 5 else "")
        log.warning("%s: %d row%s skipped: %s (line%s %s)", source, len(lines),
                    "s" if len(lines) != 1 else "", kind, "s" if len(lines) != 1 else "",
                    shown)
