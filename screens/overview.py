"""Overview: account health, connection, market session and the kill switch at a glance."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.widgets import Static

from screens.base import DeskScreen
from widgets.format import hm, money, ny_time, pct
from widgets.palette import BOLD_GREEN, BOLD_RED, BOLD_YELLOW, GREEN, YELLOW

if TYPE_CHECKING:
    from core.engine import EngineState


def _kv_table(numbers: bool = False) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True, min_width=14)
    table.add_column(justify="right" if numbers else "left", no_wrap=numbers)
    return table


class OverviewScreen(DeskScreen):
    SCREEN_NAME = "Overview"
    HELP_NOTE = ("Account health, the kill switch, the broker connection and the market "
                 "session at a glance. ↑↓ scroll on a short terminal.")
    DEFAULT_CSS = """
    OverviewScreen #body { height: 1fr; }
    OverviewScreen Grid { grid-size: 2; grid-gutter: 1 2; padding: 1 2; height: auto;
        max-width: 140; }
    OverviewScreen.-narrow Grid { grid-gutter: 0 1; padding: 0 0; }
    OverviewScreen .panel { border: round $primary; padding: 0 1; height: auto; }
    """

    def compose_body(self) -> ComposeResult:
        # Scrollable (and focused) so that a short terminal reaches every panel by keys.
        with VerticalScroll(id="body"), Grid():
            yield Static("Waiting for the broker…", id="account", classes="panel")
            yield Static("", id="halt", classes="panel")
            yield Static("", id="connection", classes="panel")
            yield Static("", id="market", classes="panel")

    def on_mount(self) -> None:
        super().on_mount()
        for pid, title in (("account", "Account"), ("halt", "Kill switch"),
                           ("connection", "Broker"), ("market", "Market")):
            self.query_one(f"#{pid}").border_title = title

    def show_engine_state(self, state: EngineState) -> None:
        self.query_one("#account", Static).update(self._account(state))
        self.query_one("#halt", Static).update(self._halt(state))
        self.query_one("#connection", Static).update(self._connection(state))
        self.query_one("#market", Static).update(self._market(state))

    def _account(self, state: EngineState) -> Table | str:
        a = state.account
        if a is None:
            return state.account_error or "No account data yet."
        risk = self.desk.settings.risk
        table = _kv_table(numbers=True)
        table.add_row("Net liquidation", money(a.net_liquidation))
        table.add_row("Cash", money(a.total_cash))
        table.add_row("Equity with loan", money(a.equity_with_loan))
        table.add_row("Initial margin", money(a.init_margin_req))
        table.add_row("Maintenance margin", money(a.maint_margin_req))
        table.add_row("Available funds", money(a.available_funds))
        table.add_row("Excess liquidity", money(a.excess_liquidity))
        ratio = state.excess_liquidity_ratio
        if ratio is None:
            band = Text("unknown", style=BOLD_YELLOW)
        elif ratio < risk.excess_liquidity_reject_pct:
            band = Text(f"{pct(ratio)}  DANGER (<{pct(risk.excess_liquidity_reject_pct, 0)})",
                        style=BOLD_RED)
        elif ratio < risk.excess_liquidity_warn_pct:
            band = Text(f"{pct(ratio)}  LOW (<{pct(risk.excess_liquidity_warn_pct, 0)})",
                        style=BOLD_YELLOW)
        else:
            band = Text(f"{pct(ratio)}  OK", style=GREEN)
        table.add_row("Excess liq. / NLV", band)
        table.add_row("Margin utilisation", pct(a.margin_utilization))
        checked = ny_time(state.account_checked_at)
        table.add_row("Checked", f"{checked}" + (f" ({state.account_error})"
                                                 if state.account_error else ""))
        return table

    def _halt(self, state: EngineState) -> Table:
        h = state.halt
        table = _kv_table()
        if h.halted:
            table.add_row("State", Text("HALTED", style=BOLD_RED))
            table.add_row("Reason", Text(h.reason, overflow="fold"))
            table.add_row("Since", ny_time(h.since, with_date=True))
            table.add_row("By", Text(h.by or "—", overflow="fold"))
            if not self.read_only:
                table.add_row("ctrl+r", Text("resume (asks first)", style="dim"))
        else:
            table.add_row("State", Text("TRADING ACTIVE", style=BOLD_GREEN))
            if h.since:
                table.add_row("Last resumed", ny_time(h.since, with_date=True))
                table.add_row("By", Text(h.by or "—", overflow="fold"))
            table.add_row("ctrl+k", Text("halt all trading", style="dim"))
        if self.read_only:
            table.add_row("This console", Text("READ-ONLY: no orders, no resume; ctrl+k still "
                                               "halts", style="bold", overflow="fold"))
        return table

    def _connection(self, state: EngineState) -> Table:
        b = state.broker
        table = _kv_table()
        table.add_row("Broker", b.description)
        table.add_row("Account", b.account_id or "—")
        table.add_row("State", Text("connected", style=GREEN) if b.connected
                      else Text("DISCONNECTED", style=BOLD_RED))
        table.add_row("API mode", "read-only" if b.read_only else "trading")
        if b.last_error:
            table.add_row("Last error", Text(b.last_error, overflow="fold"))
        if state.last_message:  # one line: the Log (f9) has them all in full
            table.add_row("Last event", Text(state.last_message, overflow="ellipsis",
                                             no_wrap=True))
        return table

    def _market(self, state: EngineState) -> Table | str:
        s = state.session
        if s is None:
            return "Market calendar loading…"
        table = _kv_table()
        table.add_row("Session", Text(f"{s.session} ({s.reason})",
                                      style=GREEN if s.session == "REGULAR" else YELLOW))
        table.add_row("Market time", ny_time(state.now, with_date=True))
        if s.session_open and s.session_close:
            table.add_row("Today", f"{hm(s.session_open)}–{hm(s.session_close)} ET")
        table.add_row("Next open", ny_time(s.next_open, with_date=True))
        table.add_row("Next close", ny_time(s.next_close, with_date=True))
        allowed = "yes" if s.allows_orders else "no (market closed)"
        if self.read_only:
            allowed += " · not from this read-only console"
        table.add_row("Orders allowed", Text(allowed, overflow="fold"))
        return table
