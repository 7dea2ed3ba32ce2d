"""Orders: every order PutDesk staged or sent (opening sells, closes, rolls, stock sales)
and its progress — send now (after a confirmation), cancel any working order, a kind
filter, dry-run toggle, reconcile with the broker. Rejections show their reason."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from core.execution.ledger import DRY_RUN_OK, attempt_mark
from screens.base import DeskScreen, busy
from screens.confirm import ConfirmScreen
from widgets.format import contract_label, ny_time
from widgets.palette import BOLD_CYAN, BOLD_GREEN, BOLD_RED, BOLD_YELLOW, ON_RED, ON_YELLOW

if TYPE_CHECKING:
    from core.db.tables import StagedOrder
    from core.engine import EngineState

STATUS_STYLE = {
    "STAGED": BOLD_CYAN, "SENDING": BOLD_YELLOW, "WORKING": BOLD_YELLOW,
    "UNKNOWN": ON_RED, "FILLED": BOLD_GREEN, "PARTIAL": BOLD_GREEN,
    "CANCELLED": "dim", "REJECTED": BOLD_RED,
}
SHOWN = 60
CANCELLABLE = ("STAGED", "SENDING", "WORKING", "UNKNOWN")


def status_text(r: StagedOrder) -> Text:
    """The status, or for a staged order the outcome of its last attempt (a dry run, a
    refused send), which the row keeps until it is sent."""
    mark = attempt_mark(r)
    if mark is None:
        return Text(r.status, style=STATUS_STYLE.get(r.status, ""))
    if mark == DRY_RUN_OK:
        return Text("DRY RUN", style=BOLD_GREEN)
    return Text("REFUSED", style=BOLD_RED)


def contract_text(r: StagedOrder) -> str:
    if r.strike is None or r.expiration is None:
        return f"{r.symbol} shares"
    return contract_label(r.symbol, r.expiration, r.strike)


class OrdersScreen(DeskScreen):
    SCREEN_NAME = "Orders"
    HELP_NOTE = ("Every order, newest first (opening sells, closes, rolls, stock sales), with "
                 "live progress, who follows it and the reason of every rejection. Orders "
                 "staged before the open go out at the open by themselves.")
    ORDER_ACTIONS = frozenset({"execute_one", "execute_all", "cancel", "toggle_dry_run",
                               "reconcile"})
    KIND_FILTERS = (None, "open", "close", "roll", "stock")
    DEFAULT_CSS = """
    OrdersScreen #mode { height: auto; padding: 0 1; }
    OrdersScreen #orders { height: 1fr; }
    OrdersScreen #detail { height: auto; max-height: 8; padding: 0 1;
        border-top: solid $primary; }
    """
    BINDINGS = [
        Binding("e", "execute_one", "Send now", id="orders-execute",
                tooltip="Re-check and send the highlighted staged order (asks first)"),
        Binding("E", "execute_all", "Send all", id="orders-execute-all",
                tooltip="Re-check and send every staged order (asks first)"),
        Binding("x", "cancel", "Cancel", id="orders-cancel",
                tooltip="Cancel the highlighted staged or working order (asks first)"),
        Binding("k", "next_kind", "Kind", id="orders-kind",
                tooltip="Show all orders, or only opening sells, closes, rolls, stock sales"),
        Binding("d", "toggle_dry_run", "Dry run", id="orders-dry-run",
                tooltip="Dry run: every step except sending"),
        Binding("r", "reconcile", "Reconcile", id="orders-reconcile",
                tooltip="Match the broker's open orders and fills to PutDesk's by orderRef"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[StagedOrder] = []
        self.dry_run = False
        self._version = -1
        self.kind: str | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="mode")
        table: DataTable[Any] = DataTable(id="orders", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="detail")

    def on_mount(self) -> None:
        super().on_mount()
        self.dry_run = self.desk.settings.execution.dry_run
        table = self.query_one("#orders", DataTable)
        for key, label, width in (("staged", "Created", 12), ("kind", "Kind", 5),
                                  ("contract", "Contract", 19),
                                  ("qty", "Qty", 4), ("limit", "Limit", 6),
                                  ("status", "Status", 9), ("filled", "Filled", 6),
                                  ("avg", "Avg", 6), ("live", "Live lmt", 8),
                                  ("dev", "Dev", 4), ("message", "Message", 60)):
            table.add_column(label, width=width, key=key)
        table.border_title = "Orders (newest first)"
        self._show_mode()
        self.reload()

    def show_engine_state(self, state: EngineState) -> None:
        if state.orders_version != self._version:
            self._version = state.orders_version
            self.reload()

    # --- data --------------------------------------------------------------------------

    @work(group="orders-load", exclusive=True, exit_on_error=False)
    async def reload(self) -> None:
        engine = self.desk.engine
        if engine is None:
            return
        rows = await asyncio.to_thread(engine.staged.list, None,
                                       (self.kind,) if self.kind else None)
        self._fill(sorted(rows, key=lambda r: r.created_at, reverse=True)[:SHOWN])

    def _fill(self, rows: list[StagedOrder]) -> None:
        table = self.query_one("#orders", DataTable)
        keep = self._current_id()
        self.rows = rows
        table.clear()
        for r in rows:
            table.add_row(
                ny_time(r.created_at, with_date=True)[4:16], r.kind,
                contract_text(r), f"{'-' if r.action == 'BUY' else ''}{r.contracts}",
                "MKT" if r.kind == "stock" else f"{r.last_limit or r.limit_price:.2f}",
                status_text(r),
                f"{r.filled}/{r.contracts}" if r.filled else "",
                "" if r.avg_fill_price is None else f"{r.avg_fill_price:.2f}",
                "" if r.last_limit is None else f"{r.last_limit:.2f}",
                "" if r.limit_deviation is None else f"{r.limit_deviation:.0%}",
                Text(r.message or "", overflow="ellipsis", no_wrap=True), key=r.id)
        if keep is not None and any(r.id == keep for r in rows):
            table.move_cursor(row=table.get_row_index(keep))
        self._show_detail()
        self.refresh_bindings()

    def _current_id(self) -> str | None:
        table = self.query_one("#orders", DataTable)
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def _current(self) -> StagedOrder | None:
        wanted = self._current_id()
        return next((r for r in self.rows if r.id == wanted), None)

    @on(DataTable.RowHighlighted, "#orders")
    def _highlighted(self) -> None:
        self._show_detail()
        self.refresh_bindings()

    def _show_detail(self) -> None:
        row = self._current()
        detail = self.query_one("#detail", Static)
        if row is None:
            detail.update(Text("No staged orders." + ("" if self.read_only else
                               " Stage one from Candidates (f2): space marks, c pre-checks, "
                               "a approves and stages."), style="dim"))
            return
        text = Text()
        text.append(contract_text(row), style="bold")
        price = ("at market" if row.kind == "stock" else
                 f"at {row.last_limit:.2f} (first {row.limit_price:.2f})"
                 if row.last_limit is not None and row.kind == "open"
                 else f"at {row.last_limit or row.limit_price:.2f}")
        text.append(f"  {row.kind} · {row.action} {row.contracts} {price} · {row.status}"
                    f" · orderRef {row.order_ref} · by {row.actor}\n")
        if row.sender and row.status in ("SENDING", "WORKING", "UNKNOWN"):
            text.append(f"followed by {row.sender}"
                        + (f" · cancel asked by {row.cancel_requested}"
                           if row.cancel_requested else "") + "\n", style="dim")
        text.append(row.message or "", style=STATUS_STYLE.get(row.status, ""))
        detail.update(text)

    def _show_mode(self) -> None:
        text = Text()
        if self.read_only:
            text.append(" READ-ONLY ", style="bold reverse")
            text.append("  orders are shown, not sent, cancelled or reconciled from here")
        elif self.dry_run:
            text.append(" DRY RUN ", style=ON_YELLOW)
            text.append("  every step except sending · d turns it off")
        else:
            text.append(" LIVE ", style=ON_RED)
            # Every send is re-checked first: the help says so; this line fits 80 columns.
            text.append("  e sends the highlighted order · E all staged · d dry run")
        self.query_one("#mode", Static).update(text)

    # --- actions -------------------------------------------------------------------------

    def action_state(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.is_mounted:
            return True
        row = self._current()
        if action == "execute_one":
            return True if row is not None and row.status == "STAGED" else None
        if action == "cancel":
            return True if row is not None and row.status in CANCELLABLE else None
        if action == "execute_all":
            return True if any(r.status == "STAGED" for r in self.rows) else None
        return True

    def action_toggle_dry_run(self) -> None:
        if self.refuse_order():
            return
        self.dry_run = not self.dry_run
        self._show_mode()

    def action_execute_one(self) -> None:
        if self.refuse_order():
            return
        row = self._current()
        if row is not None and row.status == "STAGED":
            self._confirm_execute([row])

    def action_execute_all(self) -> None:
        if self.refuse_order():
            return
        self._confirm_execute([r for r in self.rows if r.status == "STAGED"])

    def _confirm_execute(self, rows: list[StagedOrder]) -> None:
        if not rows:
            return
        lines = "\n".join(f"  SELL {r.contracts} {contract_text(r)}, staged at "
                          f"{r.limit_price:.2f}" for r in rows[:8])
        more = f"\n  … and {len(rows) - 8} more" if len(rows) > 8 else ""
        mode = ("DRY RUN: nothing is sent." if self.dry_run else
                "Each is re-checked with live data; the limit follows the live quote.")
        ids = [r.id for r in rows]

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self._execute(ids)

        self.app.push_screen(ConfirmScreen(
            "Dry-run these orders?" if self.dry_run else "Send these orders now?",
            f"{lines}{more}\n\n{mode}",
            confirm_label="Dry run" if self.dry_run else "Send"), answered)

    def _execute(self, ids: list[str]) -> None:
        engine = self.desk.engine
        if engine is None:
            return
        dry = self.dry_run

        async def run() -> None:
            try:
                results = await engine.execute(ids, dry_run=dry)
            except Exception as exc:
                self.app.notify(f"{type(exc).__name__}: {exc}", title="Execution failed",
                                severity="error", markup=False)
                return
            for row, result in results:
                self.app.notify(f"{row.symbol} {row.strike:g}P: {result.outcome} — "
                                f"{result.reason}", title="Order",
                                severity="information" if result.success else "warning",
                                markup=False, timeout=8)
            self.reload()

        # On the app, not this screen: an order must not stop when the operator looks away.
        self.app.run_worker(run(), group="execution", exit_on_error=False)

    def action_cancel(self) -> None:
        if self.refuse_order():
            return
        row = self._current()
        engine = self.desk.engine
        if row is None or engine is None or row.status not in CANCELLABLE:
            return
        staged_id = row.id

        def answered(confirmed: bool | None) -> None:
            if not confirmed:
                return

            async def run() -> None:
                try:
                    await engine.cancel_staged(staged_id, self.desk.who())
                except Exception as exc:
                    self.app.notify(str(exc), title="Not cancelled", severity="error",
                                    markup=False)
                self.reload()

            self.app.run_worker(run(), group="execution", exit_on_error=False)

        self.app.push_screen(ConfirmScreen(
            "Cancel this order?",
            f"{row.kind} {row.action} {contract_text(row)} x{row.contracts} ({row.status})",
            confirm_label="Cancel order"), answered)

    def action_next_kind(self) -> None:
        i = self.KIND_FILTERS.index(self.kind)
        self.kind = self.KIND_FILTERS[(i + 1) % len(self.KIND_FILTERS)]
        table = self.query_one("#orders", DataTable)
        table.border_title = (f"Orders: {self.kind} only (k: next kind)" if self.kind
                              else "Orders (newest first)")
        self.reload()

    def action_reconcile(self) -> None:
        if self.refuse_order():
            return
        engine = self.desk.engine
        if engine is None:
            return

        async def run() -> None:
            async with busy(self.query_one("#orders", DataTable)):
                report = await engine.reconcile()
            self.app.notify(report.summary(), title="Reconcile",
                            severity="information" if report.clean else "warning",
                            markup=False)
            self.reload()

        self.app.run_worker(run(), group="reconcile", exit_on_error=False)
