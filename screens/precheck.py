"""Pre-trade check: every governor check for one or several opportunities, the sizing
explanation and the WhatIf figures; approve-to-stage only when approved."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Static

from screens.base import DeskScreen
from screens.confirm import ConfirmScreen
from widgets.check_list import CheckList, decision_text
from widgets.format import money, pct
from widgets.palette import BOLD_CYAN, BOLD_RED, GREEN, ON_YELLOW, YELLOW

if TYPE_CHECKING:
    from core.models import Opportunity, RiskDecision


def _cents(value: float | None) -> str:
    return money(value, cents=True)


class PreCheckScreen(DeskScreen):
    SCREEN_NAME = "Pre-trade check"
    HELP_NOTE = ("From Candidates (f2): mark with space, then c. Every governor check for "
                 "each opportunity, the sizing and the WhatIf margin.")
    ORDER_ACTIONS = frozenset({"stage"})
    DEFAULT_CSS = """
    PreCheckScreen #decisions { height: auto; max-height: 8; }
    PreCheckScreen #checks { height: auto; max-height: 20; margin-top: 1; }
    PreCheckScreen #body { height: 1fr; }
    PreCheckScreen #figures { height: auto; }
    PreCheckScreen #figures:focus { border-left: thick $accent; }
    PreCheckScreen.-narrow #figures { layout: vertical; }
    PreCheckScreen .panel { width: 1fr; height: auto; border: round $primary; padding: 0 1; }
    PreCheckScreen #hint { height: auto; padding: 0 1; color: $text-muted; }
    """
    BINDINGS = [
        Binding("escape", "back", "Back", id="precheck-back"),
        Binding("a", "stage", "Approve & stage", id="precheck-stage",
                tooltip="Stage the highlighted approved trade for execution (asks first)"),
        Binding("r", "recheck", "Re-check", id="precheck-recheck",
                tooltip="Run every check again with fresh broker data"),
    ]

    def __init__(self, opportunities: list[Opportunity]) -> None:
        super().__init__()
        self.opportunities = opportunities
        self.decisions: dict[int, RiskDecision] = {}
        self.staged: dict[int, str] = {}

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="body", can_focus=False):
            yield Static("", id="hint")
            decisions: DataTable[Any] = DataTable(id="decisions", cursor_type="row")
            yield decisions
            yield CheckList(id="checks")
            # Focusable, so that tab scrolls sizing and WhatIf into view on a short terminal.
            figures = Horizontal(id="figures")
            figures.can_focus = True
            with figures:
                yield Static("", id="sizing", classes="panel")
                yield Static("", id="whatif", classes="panel")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#decisions", DataTable)
        for key, label, width in (("opp", "Opportunity", 22), ("qty", "Qty", 4),
                                  ("limit", "Limit", 7), ("result", "Decision", 13),
                                  ("reason", "First failure / warnings", 62)):
            table.add_column(label, width=width, key=key)
        for i, opp in enumerate(self.opportunities):
            table.add_row(opp.label, "…", _cents(opp.premium)[1:] if opp.premium else "—",
                          Text("checking…", style="dim"), "", key=str(i))
        self.query_one("#checks", CheckList).border_title = "Checks, in chain order"
        self.query_one("#sizing").border_title = "Sizing"
        self.query_one("#whatif").border_title = "Margin (WhatIf)"
        self.run_checks()

    # --- checks --------------------------------------------------------------------

    @work(group="precheck", exclusive=True, exit_on_error=False)
    async def run_checks(self) -> None:
        engine = self.desk.engine
        hint = self.query_one("#hint", Static)
        if engine is None:
            hint.update(Text("The engine is not running: nothing can be checked.",
                             style=BOLD_RED))
            return
        self.decisions.clear()
        for i, opp in enumerate(self.opportunities):
            hint.update(Text(f"Checking {i + 1} of {len(self.opportunities)}: {opp.label}…"))
            try:
                # A row staged from here is re-checked as that staged order (it is not a
                # duplicate of itself); the others as new trades.
                decision = await engine.check(opp, revalidating=self.staged.get(i))
            except Exception as exc:
                self.notify(f"{opp.label}: {exc}", title="Check failed", severity="error",
                            markup=False)
                continue
            self.decisions[i] = decision
            self._show_row(i, decision)
            if i == self._cursor():
                self._show_detail(decision)
        approved = sum(1 for d in self.decisions.values() if d.approved)
        keys = ("read-only: no staging" if self.read_only
                else "a approves & stages (approved only)")
        hint.update(Text(f"{approved} of {len(self.opportunities)} approved · ↑↓ choose · "
                         f"{keys} · r re-checks · esc back"))
        self.refresh_bindings()

    def _show_row(self, i: int, decision: RiskDecision) -> None:
        table = self.query_one("#decisions", DataTable)
        opp = decision.opportunity
        first = decision.rejected_by
        reason = (first.reason if first else
                  "; ".join(w.reason for w in decision.warnings) or "every check passed")
        row = str(i)
        table.update_cell(row, "qty", str(opp.contracts))
        table.update_cell(row, "limit", "—" if opp.premium is None else f"{opp.premium:.2f}")
        table.update_cell(row, "result", Text("STAGED", style=BOLD_CYAN)
                          if i in self.staged else decision_text(decision))
        table.update_cell(row, "reason", Text(reason, overflow="ellipsis", no_wrap=True))

    def _cursor(self) -> int:
        return self.query_one("#decisions", DataTable).cursor_row

    @on(DataTable.RowHighlighted, "#decisions")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(self.decisions.get(event.cursor_row))
        self.refresh_bindings()

    def _show_detail(self, decision: RiskDecision | None) -> None:
        self.query_one("#checks", CheckList).show(decision)
        self.query_one("#sizing", Static).update(self._sizing(decision))
        self.query_one("#whatif", Static).update(self._whatif(decision))

    @staticmethod
    def _sizing(decision: RiskDecision | None) -> Text | str:
        if decision is None or decision.sizing is None:
            return "—"
        s = decision.sizing
        text = Text()
        text.append(f"{s.contracts} contract{'s' if s.contracts != 1 else ''}\n", style="bold")
        text.append(s.explanation.replace("; ", "\n"))
        return text

    @staticmethod
    def _whatif(decision: RiskDecision | None) -> Table | str:
        if decision is None or decision.whatif is None:
            return "—"
        w = decision.whatif
        table = Table.grid(padding=(0, 2))
        table.add_column(style="dim", no_wrap=True, min_width=20)
        table.add_column(justify="right")
        source = (Text("IBKR what-if", style=GREEN) if w.source == "whatif"
                  else Text("ESTIMATE", style=ON_YELLOW))
        table.add_row("Source", source)
        table.add_row("Margin impact", _cents(w.margin_impact))
        table.add_row("Per-trade cap", _cents(w.per_trade_cap))
        table.add_row("Estimate (Layer 1)", _cents(w.estimated_margin))
        table.add_row("Init margin → after",
                      f"{_cents(w.init_margin_before)} → {_cents(w.init_margin_after)}")
        table.add_row("Maint margin after", _cents(w.maint_margin_after))
        table.add_row("Equity w/ loan after", _cents(w.equity_with_loan_after))
        table.add_row("Utilisation after", pct(w.utilization_after))
        table.add_row("Commission", _cents(w.commission))
        if w.fallback_reason:
            table.add_row("Note", Text(w.fallback_reason, style=YELLOW, overflow="fold"))
        return table

    # --- actions -------------------------------------------------------------------

    def action_state(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stage":
            i = self._cursor() if self.is_mounted else -1
            decision = self.decisions.get(i)
            if decision is None or not decision.approved or decision.preview or i in self.staged:
                return None  # shown, but disabled: only an approved decision can be staged
        return True

    def action_back(self) -> None:
        self.dismiss()

    def action_recheck(self) -> None:
        self.run_checks()

    def action_stage(self) -> None:
        if self.refuse_order():
            return
        i = self._cursor()
        decision = self.decisions.get(i)
        engine = self.desk.engine
        if decision is None or engine is None or not decision.approved:
            return
        opp = decision.opportunity
        warnings = "".join(f"\n  ⚠ {w.reason}" for w in decision.warnings)

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.stage(i, decision)

        self.app.push_screen(ConfirmScreen(
            "Stage this trade?",
            f"SELL {opp.contracts} {opp.label} at a {opp.premium:.2f} limit.{warnings}\n\n"
            "It is re-validated with live data before it is sent.",
            confirm_label="Stage"), answered)

    @work(group="stage", exclusive=True, exit_on_error=False)
    async def stage(self, i: int, decision: RiskDecision) -> None:
        engine = self.desk.engine
        if engine is None:
            return
        opp = decision.opportunity
        try:
            staged = await engine.stage(decision, self.desk.who())
        except Exception as exc:
            self.notify(str(exc), title="Not staged", severity="error", markup=False)
            return
        self.staged[i] = staged.id
        self._show_row(i, decision)
        self.refresh_bindings()
        self.notify(f"Staged {opp.label} x{opp.contracts} at {opp.premium:.2f} "
                    f"({staged.order_ref}). It is re-checked before it is sent; f4 shows the "
                    "staged orders.",
                    title="Staged", markup=False)
