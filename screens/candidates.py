"""Candidates: scan a Barchart CSV (or the API), see what was accepted and why, and what
was turned away at which stage."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.suggester import Suggester
from textual.widgets import Button, DataTable, Input, ProgressBar, Static

from screens.base import DeskModal, DeskScreen
from widgets.format import contract_label, expiry, greek, money, pct, price
from widgets.palette import BOLD_CYAN, BOLD_GREEN, BOLD_RED, BOLD_YELLOW, YELLOW

if TYPE_CHECKING:
    from core.models import Candidate
    from core.screening.pipeline import ScanResult

DEMO_CSV = Path(__file__).parents[1] / "core" / "data" / "scenarios" / "demo-barchart.csv"

#: column key -> (label, width). The score and the figures a trader reads come first
#: (premium per contract, annualised return on margin, probability OTM from N(d2)); 80
#: columns show them up to OTM%; the score parts (0..1 scores, "s·" labels) follow.
COLUMNS: dict[str, tuple[str, int]] = {
    "mark": ("", 1), "note": ("!", 1), "symbol": ("Symbol", 6), "exp": ("Exp", 7),
    "dte": ("DTE", 3), "strike": ("Strike", 7), "score": ("Score", 5),
    "prem": ("$/ct", 5), "ann": ("Ann%", 5), "potm": ("POTM", 5), "rom": ("ROM", 5),
    "otm": ("OTM%", 5), "bid": ("Bid", 5), "delta": ("Δ", 5), "ivr": ("IVR", 4),
    "earn": ("Earn", 7), "spread": ("Sprd", 4), "ret": ("s·Ret", 5),
    "prob": ("s·POT", 5), "liq": ("s·Liq", 5), "pen": ("Pen", 4),
}
SORTS = {
    "score": lambda c: -(c.score or 0), "symbol": lambda c: c.symbol, "dte": lambda c: c.dte,
    "otm": lambda c: -c.otm_pct, "ivr": lambda c: -(c.iv_rank or 0),
    "ann": lambda c: -(c.annualised_return or 0), "potm": lambda c: -(c.prob_otm or 0),
    "strike": lambda c: c.strike, "exp": lambda c: c.expiration,
    "bid": lambda c: -(c.premium or 0),
}


class PathSuggester(Suggester):
    """Completes file-system paths as you type (accept with the right arrow)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        # Off the UI loop: listing a large or remote folder must not stall typing.
        return await asyncio.to_thread(_complete_path, value) if value else None


def _complete_path(value: str) -> str | None:
    folder, prefix = os.path.split(os.path.expanduser(value))
    try:
        entries = sorted(os.listdir(folder or "."))
    except OSError:
        return None
    for name in entries:
        if name.startswith(prefix) and name != prefix and not name.startswith("."):
            suffix = "/" if os.path.isdir(os.path.join(folder, name)) else ""
            return value + name[len(prefix):] + suffix
    return None


def _f(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


class CandidatesScreen(DeskScreen):
    SCREEN_NAME = "Candidates"
    HELP_NOTE = ("Scan a Barchart CSV export (Enter scans; / edits the path, → completes) "
                 "or the API; accepted candidates with their score parts, x shows the rejected "
                 "ones with stage and reason. enter opens a candidate with its live chain.")
    DEFAULT_CSS = """
    CandidatesScreen #bar { height: 3; padding: 0 1; }
    CandidatesScreen #csv-path { width: 1fr; }
    CandidatesScreen #bar Button { margin-left: 1; min-width: 12; }
    CandidatesScreen #progress-row { height: 1; padding: 0 1; display: none; }
    CandidatesScreen #progress-row.-busy { display: block; }
    CandidatesScreen #stage { width: auto; }
    CandidatesScreen #summary { height: auto; padding: 0 1; color: $text-muted; }
    CandidatesScreen #accepted { height: 1fr; }
    CandidatesScreen #rejected { height: 1fr; display: none; }
    CandidatesScreen.-show-rejected #accepted { height: 1fr; }
    CandidatesScreen.-show-rejected #rejected { display: block; }
    """
    BINDINGS = [
        Binding("x", "toggle_rejected", "Rejected", id="candidates-rejected",
                tooltip="Show or hide the candidates turned away, with stage and reason"),
        Binding("s", "cycle_sort", "Sort", id="candidates-sort",
                tooltip="Sort by the next column (score, symbol, DTE, OTM%, IV rank ...)"),
        Binding("slash", "focus_path", "CSV path", id="candidates-path"),
        Binding("space", "mark", "Mark", id="candidates-mark",
                tooltip="Mark or unmark the highlighted candidate for a pre-trade check"),
        Binding("c", "precheck", "Pre-check", id="candidates-precheck",
                tooltip="Size and run every risk check on the marked candidates "
                        "(or the highlighted one)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.result: ScanResult | None = None
        self._sort = "score"
        self.marked: set[str] = set()

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="bar"):
            yield Input(placeholder="Barchart CSV export (→ completes the path, Enter scans)",
                        id="csv-path", suggester=PathSuggester())
            yield Button("Scan CSV", id="scan-csv", variant="primary")
            yield Button("API scan", id="scan-api")
        with Horizontal(id="progress-row"):
            yield Static("", id="stage")
            yield ProgressBar(id="progress", show_eta=False)
        yield Static("No scan yet. Enter a CSV path (the demo export is filled in) and "
                     "press Enter.", id="summary")
        accepted: DataTable[Any] = DataTable(id="accepted", cursor_type="row", zebra_stripes=True)
        yield accepted
        rejected: DataTable[Any] = DataTable(id="rejected", cursor_type="row")
        yield rejected

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#accepted", DataTable)
        for key, (label, width) in COLUMNS.items():
            table.add_column(label, width=width, key=key)
        rejected = self.query_one("#rejected", DataTable)
        for key, label, width in (("symbol", "Symbol", 7), ("strike", "Strike", 8),
                                  ("exp", "Exp", 8), ("stage", "Stage", 10),
                                  ("reason", "Reason", 70)):
            rejected.add_column(label, width=width, key=key)
        rejected.border_title = "Rejected"
        path = self.query_one("#csv-path", Input)
        if self.desk.settings.app.broker == "sim" and DEMO_CSV.exists():
            path.value = str(DEMO_CSV)
        # A filled path leaves the focus on the Scan button: Enter scans, and the number
        # keys still switch screens (in the path box they would type into the path).
        if path.value:
            self.query_one("#scan-csv", Button).focus()
            self.query_one("#summary", Static).update(
                "No scan yet. Enter scans the export in the path box; / edits the path.")
        else:
            path.focus()

    # --- scanning ----------------------------------------------------------------

    @on(Input.Submitted, "#csv-path")
    @on(Button.Pressed, "#scan-csv")
    def _scan_csv(self) -> None:
        text = self.query_one("#csv-path", Input).value.strip()
        if not text:
            self.notify("Enter the path of a Barchart CSV export.", severity="warning")
            return
        self.run_scan(Path(os.path.expanduser(text)))

    @on(Button.Pressed, "#scan-api")
    def _scan_api(self) -> None:
        self.run_scan(None)

    @work(group="scan", exclusive=True, exit_on_error=False)
    async def run_scan(self, path: Path | None) -> None:
        engine = self.desk.engine
        if engine is None:
            self.notify("The engine is not running yet.", severity="warning")
            return
        from core.screening.barchart_api import BarchartApiError, scan_api
        from core.screening.barchart_csv import BarchartCsvError

        row = self.query_one("#progress-row")
        bar = self.query_one("#progress", ProgressBar)
        stage = self.query_one("#stage", Static)
        row.add_class("-busy")
        self.query_one("#summary", Static).update(
            f"Scanning {path.name if path is not None else 'the Barchart API'}…")
        stage.update("Reading…  ")
        bar.update(total=None)

        shown_at, shown_stage = 0.0, ""

        def progress(name: str, done: int, total: int) -> None:
            # At most ~10 repaints a second (and every stage change, and the end), not a
            # repaint per candidate.
            nonlocal shown_at, shown_stage
            now = time.monotonic()
            if name == shown_stage and done < total and now - shown_at < 0.1:
                return
            shown_at, shown_stage = now, name
            stage.update(f"{name.capitalize()} {done}/{total}  ")
            bar.update(total=total, progress=done)

        pipeline = engine.screening()
        try:
            if path is not None:
                result = await pipeline.scan_csv(path, progress)
            else:
                source = await scan_api(self.desk.settings, pipeline.today())
                result = await pipeline.run_source(source, progress)
        except (BarchartCsvError, BarchartApiError) as exc:
            self.query_one("#summary", Static).update(Text(f"Cannot scan: {exc}",
                                                           style=BOLD_RED))
            self.notify(str(exc), title="Scan failed", severity="error", markup=False)
            return
        except Exception as exc:
            self.query_one("#summary", Static).update(Text(f"Scan failed: {exc}",
                                                           style=BOLD_RED))
            self.notify(f"{type(exc).__name__}: {exc}", title="Scan failed",
                        severity="error", markup=False)
            return
        finally:
            row.remove_class("-busy")
        await engine.record_scan(result, self.desk.who())
        self.show_result(result)
        self.query_one("#accepted", DataTable).focus()

    # --- presentation --------------------------------------------------------------

    def show_result(self, result: ScanResult) -> None:
        self.result = result
        by_stage: dict[str, int] = {}
        for r in result.rejected:
            by_stage[r.stage] = by_stage.get(r.stage, 0) + 1
        stages = ", ".join(f"{n} {s}" for s, n in by_stage.items()) or "none"
        text = Text()
        text.append(f"{len(result.accepted)} accepted", style=BOLD_GREEN)
        text.append(f" · {len(result.rejected)} rejected ({stages})")
        if result.snapshot_time:
            text.append(f" · file from {result.snapshot_time:%b %d %H:%M %Z}")
        text.append("  [x] rejected  [s] sort  [enter] detail  [space] mark  [c] pre-check")
        for warning in result.warnings:
            text.append(f"\n⚠ {warning}", style=YELLOW)
        self.query_one("#summary", Static).update(text)
        self._fill_accepted()
        rejected = self.query_one("#rejected", DataTable)
        rejected.clear()
        for i, r in enumerate(result.rejected):
            reason = r.reason + (f" (line {r.source_row})" if r.source_row and
                                 r.stage == "parse" else "")
            rejected.add_row(r.symbol, "" if r.strike is None else f"{r.strike:g}",
                             expiry(r.expiration) if r.expiration else "", r.stage, reason,
                             key=str(i))

    def _fill_accepted(self) -> None:
        table = self.query_one("#accepted", DataTable)
        table.clear()
        if self.result is None:
            return
        table.border_title = f"Accepted — sorted by {self._sort}"
        for c in sorted(self.result.accepted, key=SORTS[self._sort]):
            parts = c.score_parts
            earn = (expiry(c.earnings_date) if c.earnings_date else
                    Text("?", style=BOLD_YELLOW) if c.earnings_known is False else "none")
            table.add_row(
                Text("●", style=BOLD_CYAN) if c.key in self.marked else "",
                Text("⚠", style=YELLOW) if c.warnings else "",
                c.symbol, expiry(c.expiration), str(c.dte), f"{c.strike:g}",
                Text(f"{c.score:.3f}", style="bold"),
                _f(c.premium_per_contract, ",.0f"), _f(c.annualised_return, ".0%"),
                _f(c.prob_otm, ".1%"), _f(c.return_on_margin, ".1%"),
                pct(c.otm_pct), _f(c.premium, ".2f"), _f(c.delta, ".2f"),
                _f(c.iv_rank, ".0%"), earn, _f(c.spread_pct, ".0%"),
                _f(parts.get("return"), ".2f"), _f(parts.get("prob_otm"), ".2f"),
                _f(parts.get("liquidity"), ".2f"), _f(parts.get("penalty"), ".2f"),
                key=c.key)

    def _highlighted_key(self) -> str | None:
        table = self.query_one("#accepted", DataTable)
        if self.result is None or table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def action_mark(self) -> None:
        key = self._highlighted_key()
        if key is None:
            return
        self.marked.symmetric_difference_update({key})
        table = self.query_one("#accepted", DataTable)
        table.update_cell(key, "mark", Text("●", style=BOLD_CYAN) if key in self.marked else "")
        table.action_cursor_down()

    def action_precheck(self) -> None:
        from core.models import Opportunity
        from screens.precheck import PreCheckScreen

        if self.result is None:
            self.notify("Scan first, then pre-check a candidate.", severity="warning")
            return
        keys = self.marked or ({self._highlighted_key()} - {None})
        chosen = [c for c in sorted(self.result.accepted, key=SORTS[self._sort])
                  if c.key in keys]
        if not chosen:
            return
        self.app.push_screen(PreCheckScreen([Opportunity.from_candidate(c) for c in chosen]))

    def action_toggle_rejected(self) -> None:
        self.toggle_class("-show-rejected")

    def action_cycle_sort(self) -> None:
        keys = list(SORTS)
        self._sort = keys[(keys.index(self._sort) + 1) % len(keys)]
        self._fill_accepted()

    def action_focus_path(self) -> None:
        self.query_one("#csv-path", Input).focus()

    @on(DataTable.HeaderSelected, "#accepted")
    def _sort_by_header(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key in SORTS:
            self._sort = key
            self._fill_accepted()

    @on(DataTable.RowSelected, "#accepted")
    def _open_detail(self, event: DataTable.RowSelected) -> None:
        if self.result is None:
            return
        wanted = event.row_key.value
        for c in self.result.accepted:
            if c.key == wanted:
                self.app.push_screen(CandidateDetail(c))
                return


class CandidateDetail(DeskModal[None]):
    """One candidate: score components, earnings, IV rank, and the chain around it."""

    SCREEN_NAME = "Candidate detail"
    HELP_NOTE = "From Candidates: enter on a row. Score parts, earnings, IV rank, live chain."

    DEFAULT_CSS = """
    CandidateDetail { align: center middle; }
    CandidateDetail > Vertical { width: 96; max-width: 100%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1; }
    CandidateDetail DataTable { height: auto; max-height: 12; }
    """
    BINDINGS = [Binding("escape,q", "dismiss", "Close", id="detail-close")]

    def __init__(self, candidate: Candidate) -> None:
        super().__init__()
        self.candidate = candidate

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._summary(), id="detail")
            chain: DataTable[Any] = DataTable(id="chain", cursor_type="none")
            yield chain
            yield Static("Loading the chain around this strike…", id="chain-note")

    def _summary(self) -> Text:
        from core.screening.scoring import WEIGHTS

        c = self.candidate
        t = Text()
        t.append(contract_label(c.symbol, c.expiration, c.strike), style="bold")
        t.append(f"   {c.sector or 'Unknown'}\n")
        t.append(f"Underlying {price(c.underlying_price)} · OTM {pct(c.otm_pct)} · "
                 f"{c.dte} DTE · bid {price(c.premium)} / ask {price(c.live_ask)} "
                 f"(spread {pct(c.spread_pct, 0)}) · Δ {greek(c.delta, 3)}\n")
        t.append(f"IV now {pct(c.current_iv)} · IV rank {pct(c.iv_rank, 0)}"
                 f" (Barchart's: {pct(c.source_iv_rank, 0)}) · raw IV in file "
                 f"{pct(c.raw_iv)}\n")
        t.append(f"Premium {money(c.premium_per_contract, cents=True)} per contract · margin "
                 f"{money(c.margin_per_contract, cents=True)} (IBKR Reg T) · return on margin "
                 f"{pct(c.return_on_margin, 2)} · annualised {pct(c.annualised_return)}"
                 f" · P(OTM) {pct(c.prob_otm)} = N(d2)"
                 + (f" at IV {pct(c.prob_otm_inputs['iv'])}, r "
                    f"{pct(c.prob_otm_inputs['rate'], 2)}" if c.prob_otm_inputs else "")
                 + "\n")
        earnings = (f"next report {c.earnings_date:%Y-%m-%d}, after expiration"
                    if c.earnings_date else "UNKNOWN (provider had no data)"
                    if c.earnings_known is False else "no report expected")
        t.append(f"Earnings: {earnings}\n")
        t.append("Score ", style="bold")
        t.append(f"{c.score:.3f} (0..1 scores) = (" + " + ".join(
            f"{WEIGHTS[k]:g}×{k} {c.score_parts.get(k, 0):.2f}" for k in WEIGHTS)
            + f") × (1 − penalty {c.score_parts.get('penalty', 0):.2f})\n")
        for w in c.warnings:
            t.append(f"⚠ {w}\n", style=YELLOW)
        return t

    def on_mount(self) -> None:
        table = self.query_one("#chain", DataTable)
        for label, width in (("Strike", 8), ("Bid", 7), ("Ask", 7), ("Δ", 7), ("IV", 7),
                             ("OTM%", 7)):
            table.add_column(label, width=width)
        self.load_chain()

    @work(group="detail", exclusive=True, exit_on_error=False)
    async def load_chain(self) -> None:
        from core.broker.base import BrokerError, OptionContract

        engine = getattr(self.app, "engine", None)
        note = self.query_one("#chain-note", Static)
        c = self.candidate
        if engine is None:
            note.update("Chain unavailable: the engine is not running.")
            return
        try:
            chain = await engine.broker.option_chain(c.symbol)
            strikes = sorted(s for s in (chain.strikes if chain else ()) if s <= c.underlying_price)
            below = [s for s in strikes if s < c.strike][-3:]
            above = [s for s in strikes if s > c.strike][:3]
            table = self.query_one("#chain", DataTable)
            for strike in [*below, c.strike, *above]:
                q = await engine.broker.option_quote(OptionContract(c.symbol, c.expiration,
                                                                    strike))
                style = "bold reverse" if strike == c.strike else ""
                table.add_row(Text(f"{strike:g}", style=style), _f(q.bid, ".2f"),
                              _f(q.ask, ".2f"), _f(q.delta, ".3f"), _f(q.iv, ".1%"),
                              pct((c.underlying_price - strike) / c.underlying_price))
            note.update(f"Puts expiring {c.expiration:%Y-%m-%d} around {c.strike:g} "
                        "(live quotes) · escape closes")
        except BrokerError as exc:
            note.update(f"Chain unavailable: {exc}")
