"""Rolls: defensive roll proposals with their figures; `a` approves (confirmation) and
executes, `r` rejects (the exit then proceeds as a close if its rule still says so)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from core.monitoring.book import next_cycle
from screens.base import DeskScreen
from screens.confirm import ConfirmScreen
from screens.positions import position_label
from widgets.format import contract_label, greek, hm, money, option_label, plural
from widgets.palette import BOLD_CYAN, BOLD_GREEN, BOLD_YELLOW, ON_RED, ON_YELLOW, YELLOW

if TYPE_CHECKING:
    from core.db.tables import RollProposal
    from core.engine import EngineState
    from core.models import PositionView

STATUS_STYLE = {"PENDING": ON_YELLOW, "APPROVED": BOLD_CYAN,
                "EXECUTED": BOLD_GREEN, "REJECTED": "dim", "EXPIRED": "dim",
                "FAILED": ON_RED}


class RollsScreen(DeskScreen):
    SCREEN_NAME = "Rolls"
    HELP_NOTE = ("Defensive roll proposals, pending first. Approving executes the roll as one "
                 "combo order; rejecting lets the exit rule close the position.")
    ORDER_ACTIONS = frozenset({"approve", "reject"})
    DEFAULT_CSS = """
    RollsScreen #rolls { height: 1fr; }
    RollsScreen #detail { height: auto; max-height: 10; padding: 0 1;
        border-top: solid $primary; }
    RollsScreen.-empty #detail { max-height: 16; }
    """
    BINDINGS = [
        Binding("a", "approve", "Approve", id="rolls-approve",
                tooltip="Execute the highlighted pending roll (asks first)"),
        Binding("r", "reject", "Reject", id="rolls-reject",
                tooltip="Reject it: the position is closed if its exit rule still says so"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[RollProposal] = []
        self._version = -1
        self._monitor_seen: tuple[object, ...] = ()

    def compose_body(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(id="rolls", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="detail")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#rolls", DataTable)
        # The net credit next to the roll: 80 columns show everything up to the delta.
        for key, label, width in (("status", "Status", 9), ("from", "Position", 20),
                                  ("to", "Roll to", 13), ("credit", "Credit", 6),
                                  ("dte", "DTE", 4), ("delta", "Δ", 6),
                                  ("buy", "Buyback", 7), ("sell", "New prem", 8),
                                  ("margin", "Margin Δ", 9), ("why", "Reason / result", 60)):
            table.add_column(label, width=width, key=key)
        table.border_title = "Roll proposals — pending first"
        self.reload()

    def show_engine_state(self, state: EngineState) -> None:
        if state.rolls_version != self._version:
            self._version = state.rolls_version
            self.reload()
        # The empty state tells what the monitor saw: new with each of its checks.
        seen = (state.positions_checked_at, bool(state.session and state.session.allows_orders))
        if seen != self._monitor_seen and self.rows == [] and self._version >= 0:
            self._monitor_seen = seen
            self._show_detail()

    @work(group="rolls-load", exclusive=True, exit_on_error=False)
    async def reload(self) -> None:
        engine = self.desk.engine
        if engine is None:
            return
        rows = await asyncio.to_thread(engine.rolls.find)
        rows.sort(key=lambda r: (r.status != "PENDING", r.created_at))
        self._fill(rows)

    def _fill(self, rows: list[RollProposal]) -> None:
        table = self.query_one("#rolls", DataTable)
        keep = self._current()
        self.rows = rows
        table.clear()
        for p in rows:
            table.add_row(
                Text(p.status, style=STATUS_STYLE.get(p.status, "")),
                contract_label(p.symbol, p.old_expiration, p.old_strike),
                option_label(p.new_expiration, p.new_strike), f"{p.net_credit:.2f}",
                str(p.new_dte), greek(p.new_delta),
                f"{p.buyback_cost:.2f}", f"{p.new_premium:.2f}",
                money(p.margin_change, signed=True),
                Text(p.result or p.reason, overflow="ellipsis", no_wrap=True), key=p.id)
        if keep is not None and any(p.id == keep.id for p in rows):
            table.move_cursor(row=table.get_row_index(keep.id))
        self._show_detail()
        self.refresh_bindings()

    def _current(self) -> RollProposal | None:
        table = self.query_one("#rolls", DataTable)
        if table.row_count == 0:
            return None
        key = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        return next((p for p in self.rows if p.id == key), None)

    @on(DataTable.RowHighlighted, "#rolls")
    def _highlighted(self) -> None:
        self._show_detail()
        self.refresh_bindings()

    def _show_detail(self) -> None:
        p = self._current()
        detail = self.query_one("#detail", Static)
        self.set_class(p is None, "-empty")  # the empty state's explanation takes the room
        if p is None:
            detail.update(self._no_proposals())
            return
        t = Text()
        kind = "Roll out" if p.kind == "roll_out" else "Roll down and out"
        t.append(f"{kind}: {p.symbol} x{p.contracts}  ", style="bold")
        t.append(f"buy back {option_label(p.old_expiration, p.old_strike)} at "
                 f"{p.buyback_cost:.2f}, sell {option_label(p.new_expiration, p.new_strike)} "
                 f"at {p.new_premium:.2f} = net credit {p.net_credit:.2f} "
                 f"({money(p.net_credit * 100 * p.contracts)}); margin change "
                 f"{money(p.margin_change, signed=True)}\n")
        t.append(p.reason + "\n")
        if p.result:
            t.append(f"{p.status}: {p.result}", style=STATUS_STYLE.get(p.status, ""))
            if p.decided_by:
                t.append(f" (by {p.decided_by})", style="dim")
        detail.update(t)

    def _no_proposals(self) -> Text:
        """Why the table is empty: the rule in force (its settings) and what the monitor
        saw at its last check."""
        settings = self.desk.settings
        r, m = settings.rolls, settings.monitoring
        t = Text("No roll proposals. ", style="bold")
        if r.max_rolls == 0:
            t.append("MAX_ROLLS is 0: no position is ever rolled; a loss past the trigger "
                     "closes it.\n")
        else:
            t.append(f"A roll is proposed when a short put's loss reaches "
                     f"{r.trigger_loss_pct:.0%} of its premium (ROLL_TRIGGER_LOSS_PCT; the "
                     f"stop, STOP_LOSS_PCT, is {settings.exits.stop_loss_pct:.0%}), its "
                     f"|delta| is below {r.max_delta:.2f} (ROLL_MAX_DELTA), it was rolled "
                     f"fewer than {plural(r.max_rolls, 'time')} (MAX_ROLLS) and a net-credit "
                     f"roll out to {r.max_dte} days (ROLL_MAX_DTE) passes the entry "
                     "checks.\n", style="dim")
        every = f"every {m.interval_minutes:g} min, MONITOR_INTERVAL_MINUTES"
        engine, state = self.desk.engine, self.desk.engine_state
        if self.read_only:
            t.append("Read-only console: the trading process proposes rolls; they show here "
                     "when it does.")
            return t
        if engine is None or state is None or state.positions_checked_at is None:
            t.append(f"The monitor has not checked the positions yet ({every}).")
            return t
        t.append(f"Watching {plural(len(state.positions), 'position')}: checked "
                 f"{hm(state.positions_checked_at)} ET, next {hm(next_cycle(engine, state))} "
                 f"ET ({every}).")
        if not (state.session and state.session.allows_orders):
            t.append(" Market closed: rolls are proposed only while it takes orders.",
                     style=YELLOW)
        t.append("\n")
        t.append_text(_nearest(engine, state.positions, r.trigger_loss_pct))
        return t

    def action_state(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("approve", "reject") and self.is_mounted:
            p = self._current()
            if p is None:
                return False  # no proposal at all: the keys are not offered
            return True if p.status == "PENDING" else None  # shown, dim: not this one
        return True

    def action_approve(self) -> None:
        self._decide(True)

    def action_reject(self) -> None:
        self._decide(False)

    def _decide(self, approve: bool) -> None:
        if self.refuse_order():
            return
        p = self._current()
        engine = self.desk.engine
        if p is None or engine is None or p.status != "PENDING":
            return
        proposal_id = p.id
        who = self.desk.who()

        def answered(confirmed: bool | None) -> None:
            if not confirmed:
                return

            async def run() -> None:
                manager = engine.roll_manager
                try:
                    done = await (manager.approve if approve else manager.reject)(
                        proposal_id, who)
                except Exception as exc:
                    self.app.notify(str(exc), title="Roll", severity="error", markup=False)
                    return
                self.app.notify(f"{done.status}: {done.result or done.reason}", title="Roll",
                                severity="information" if done.status in (
                                    "EXECUTED", "REJECTED") else "error", markup=False)
                self.reload()

            self.app.run_worker(run(), group="execution", exit_on_error=False)

        if approve:
            body = (f"Buy back {contract_label(p.symbol, p.old_expiration, p.old_strike)} "
                    f"and sell {option_label(p.new_expiration, p.new_strike)} as one combo, x"
                    f"{p.contracts}, for a net credit (proposed {p.net_credit:.2f}; it is "
                    "re-priced from live quotes and refused if no longer a credit).")
        else:
            body = (f"Reject the roll of {p.symbol} {p.old_strike:g}P. If its loss is still "
                    "past the roll trigger, the position is closed.")
        self.app.push_screen(ConfirmScreen("Approve this roll?" if approve else
                                           "Reject this roll?", body,
                                           confirm_label="Approve" if approve else "Reject"),
                             answered)


def _nearest(engine: Any, views: tuple[PositionView, ...], trigger: float) -> Text:
    """The positions past the roll trigger with what the monitor does with each at its
    next check (the exit rules' own decision), else the one nearest to it."""
    if not views:
        return Text("No open short puts.", style="dim")
    priced = [v for v in views if v.loss_multiple is not None]
    unpriced = len(views) - len(priced)
    t = Text()
    past = sorted((v for v in priced if (v.loss_multiple or 0) >= trigger and not v.exit_state),
                  key=lambda v: -(v.loss_multiple or 0))
    for v in past:
        decision = engine.exits.evaluate(v)
        t.append(f"{position_label(v)}: loss {v.loss_multiple:.0%} of premium, past the "
                 "trigger: ", style=BOLD_YELLOW)
        t.append(("a roll is looked for at the next check" if decision.action == "roll"
                  else f"no roll, closed instead ({decision.reason})") + ".\n")
    if not past and priced:
        worst = max(priced, key=lambda v: v.loss_multiple or 0)
        loss = worst.loss_multiple or 0
        t.append(f"Nearest to the trigger: {position_label(worst)}, " + (
            f"loss {loss:.0%} of premium." if loss > 0 else
            f"at a gain ({-loss:.0%} of premium kept).") + "\n", style="dim")
    if unpriced:
        t.append(f"{plural(unpriced, 'position')} without a price: not judged.\n",
                 style=YELLOW)
    t.rstrip()
    return t
