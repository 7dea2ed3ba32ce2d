"""Overview, the trader's home: the book first (P&L, what will be acted on, what is
working or stuck, greeks, margin headroom, the next monitor cycle), then account health,
the kill switch, the broker and the market session.

The book panel is rebuilt (core.monitoring.book, database reads in a thread) when the
positions, orders, rolls or account change; its lines come in priority order, so an
80x24 terminal shows the most important ones and a large one shows more positions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.widgets import Static

from core.models import SEVERITY_ORDER
from screens.base import DeskScreen
from widgets.format import DASH, contract_label, greek, hm, money, ny_time, pct, pnl, price
from widgets.palette import BOLD_GREEN, BOLD_RED, BOLD_YELLOW, GREEN, RED, YELLOW

if TYPE_CHECKING:
    from core.engine import EngineState
    from core.models import PositionView
    from core.monitoring.book import BookSummary, GreekSum

#: Positions listed in the book panel: narrow terminals keep room for the panels below.
POSITIONS_NARROW, POSITIONS_WIDE = 5, 15
SEVERITY_STYLE = {"EMERGENCY": BOLD_RED, "CRITICAL": BOLD_RED, "WARNING": BOLD_YELLOW,
                  "INFO": ""}


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
    OverviewScreen #book { margin: 1 2 0 2; max-width: 136; }
    OverviewScreen.-narrow #book { border: none; padding: 0 0; margin: 0; }
    """

    def compose_body(self) -> ComposeResult:
        self.book: BookSummary | None = None
        self._book_key: object = None
        # Scrollable (and focused) so that a short terminal reaches every panel by keys.
        with VerticalScroll(id="body"):
            yield Static("Book: waiting for the first position check…", id="book",
                         classes="panel")
            with Grid():
                yield Static("Waiting for the broker…", id="account", classes="panel")
                yield Static("", id="halt", classes="panel")
                yield Static("", id="connection", classes="panel")
                yield Static("", id="market", classes="panel")

    def on_mount(self) -> None:
        super().on_mount()
        for pid, title in (("book", "Book"), ("account", "Account"), ("halt", "Kill switch"),
                           ("connection", "Broker"), ("market", "Market")):
            self.query_one(f"#{pid}").border_title = title

    def show_engine_state(self, state: EngineState) -> None:
        key = (state.positions_checked_at, state.orders_version, state.rolls_version,
               state.account_checked_at, state.halt.halted)
        if key != self._book_key and state.positions_checked_at is not None:
            self._book_key = key
            self.load_book(state)
        elif self.book is not None:
            self._show_book(state)  # the countdown to the next cycle moves
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

    # --- the book ------------------------------------------------------------------

    @work(group="book", exclusive=True, exit_on_error=False)
    async def load_book(self, state: EngineState) -> None:
        import asyncio

        from core.monitoring.book import build_book

        engine = self.desk.engine
        if engine is None:
            return
        try:
            self.book = await asyncio.to_thread(build_book, engine, state)
        except Exception as exc:  # a database fault is the engine's to report; say it here
            self.query_one("#book", Static).update(
                Text(f"Book unavailable: {exc}", style=BOLD_RED))
            return
        self._show_book(state)

    def _show_book(self, state: EngineState) -> None:
        book = self.book
        if book is None:
            return
        narrow = self.has_class("-narrow")
        summary = Table.grid(padding=(0, 2))
        summary.add_column(style="dim", no_wrap=True)
        summary.add_column(no_wrap=False)
        summary.add_row("P&L", _pnl_line(book, narrow))
        summary.add_row("Act next", self._actions_line(book, state))
        summary.add_row("Orders", _orders_line(book, narrow))
        summary.add_row("Risk", _greeks_line(book, narrow))
        limit = POSITIONS_NARROW if narrow else POSITIONS_WIDE
        parts: list[Table | Text] = [summary, _positions_table(book, limit, narrow)]
        self.query_one("#book", Static).update(Group(*parts))

    def _actions_line(self, book: BookSummary, state: EngineState) -> Text:
        t = Text()
        due = len(book.exits_due)
        t.append(f"{due} exit{'s' if due != 1 else ''} due", style=BOLD_YELLOW if due else "")
        if book.exits_stuck:
            t.append(f" · {len(book.exits_stuck)} EXIT STUCK", style=BOLD_RED)
        if book.exits_working:
            t.append(f" · {len(book.exits_working)} closing")
        t.append(f" · {book.pending_rolls} roll{'s' if book.pending_rolls != 1 else ''} "
                 "to approve", style=BOLD_YELLOW if book.pending_rolls else "")
        t.append(" · next cycle ")
        t.append(_next_cycle(book, state))
        if due and not book.orders_allowed:
            t.append(" · market closed: exits wait", style=YELLOW)
        elif due and state.halt.halted:
            t.append(" · HALTED: not sent", style=BOLD_RED)
        return t


def _signed(value: float | None) -> Text:
    if value is None:
        return Text(DASH)
    return Text(pnl(value), style=GREEN if value > 0 else RED if value < 0 else "")


def _pnl_line(book: BookSummary, narrow: bool) -> Text:
    t = Text("day ")
    t.append_text(_signed(book.day_pnl) if book.day_pnl is not None
                  else Text("— (no previous close recorded)", style="dim"))
    if book.day_pnl is not None and not narrow and book.day_basis:
        t.append(f" ({book.day_basis})", style="dim")
    t.append(" · since inception ")
    t.append_text(_signed(book.inception_pnl) if book.inception_pnl is not None
                  else Text("— (a position has no price)", style=YELLOW))
    t.append(f" (realised {pnl(book.realized)})", style="dim")
    return t


def _orders_line(book: BookSummary, narrow: bool) -> Text:
    n = len(book.working_orders)
    t = Text(f"{n} working", style=BOLD_YELLOW if n else "")
    shown = book.working_orders[:1 if narrow else 3]
    if shown:
        t.append(": " + ", ".join(
            f"{o.action} {o.contracts} {o.symbol}"
            + (f" {o.strike:g}P" if o.strike is not None else "")
            + f" at {price(o.last_limit or o.limit_price)} ({o.kind})" for o in shown)
            + (" …" if n > len(shown) else ""))
    alerts = book.alert_count
    t.append(" · alerts ")
    if not alerts:
        t.append("none", style=GREEN)
    else:
        t.append_text(Text(" ").join(Text(f"{count} {severity}", style=SEVERITY_STYLE[severity])
                                     for severity, count in book.alerts.items()))
    return t


def _greek_sum(g: GreekSum, text: str) -> str:
    if g.counted == 0 and g.missing:
        return f"{DASH} (no greeks)"
    return text + (f" ({g.missing} without)" if g.missing else "")


def _greeks_line(book: BookSummary, narrow: bool) -> Text:
    t = Text(f"{len(book.positions)} puts · delta ")
    t.append(_greek_sum(book.delta, f"{book.delta.total:+,.0f} sh"))
    t.append(" · theta ")
    t.append(_greek_sum(book.theta, f"{pnl(book.theta.total)}/day"))
    t.append(" · headroom ")
    if book.headroom is None:
        t.append(DASH)
    else:
        t.append(money(book.headroom), style=GREEN if book.headroom > 0 else BOLD_RED)
        if not narrow:
            t.append(" (excess liquidity above the warn line)", style="dim")
    return t


def _next_cycle(book: BookSummary, state: EngineState) -> str:
    if book.next_cycle is None:
        return DASH
    minutes = max(0, round((book.next_cycle - state.now).total_seconds() / 60))
    return f"{hm(book.next_cycle)} ET (in {minutes} min)"


def _position_note(v: PositionView, due: dict[str, str]) -> Text:
    if v.exit_state:
        return Text(v.exit_state, style=BOLD_RED if v.exit_state.startswith("EXIT STUCK")
                    else YELLOW)
    if v.position_id in due:
        return Text(due[v.position_id], style=BOLD_YELLOW)
    if v.alerts:
        worst = max(v.alerts, key=lambda a: SEVERITY_ORDER[a.severity])
        return Text(f"{worst.severity}: {worst.kind}", style=SEVERITY_STYLE[worst.severity])
    return Text("")


def _positions_table(book: BookSummary, limit: int, narrow: bool) -> Table | Text:
    if not book.positions:
        return Text("No open short puts.", style="dim")
    due = {d.view.position_id: ("ROLL: near the stop" if d.action == "roll"
                                else f"CLOSE: {d.rule.replace('_', ' ')}")
           for d in book.exits_due}
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="dim")
    table.add_column("Worst first", no_wrap=True)
    table.add_column("P&L", justify="right", no_wrap=True)
    table.add_column("Kept", justify="right", no_wrap=True)
    table.add_column("DTE", justify="right", no_wrap=True, min_width=3)
    table.add_column("Δ", justify="right", no_wrap=True)
    if not narrow:
        table.add_column("Mark", justify="right", no_wrap=True)
        table.add_column("Entry", justify="right", no_wrap=True)
        table.add_column("θ/day", justify="right", no_wrap=True)
        table.add_column("IV", justify="right", no_wrap=True)
    table.add_column("Next", overflow="ellipsis", no_wrap=True)
    for v in book.positions[:limit]:
        c = v.contract
        cells: list[Text | str] = [
            f"{contract_label(c.symbol, c.expiration, c.strike)} x{v.contracts}",
            _signed(v.pnl),
            pct(v.captured, 0), str(v.dte), greek(v.delta)]
        if not narrow:
            theta = None if v.theta is None else v.theta * 100 * v.quantity
            cells += [price(v.mark), price(v.entry_price), pnl(theta), pct(v.iv, 0)]
        table.add_row(*cells, _position_note(v, due))
    more = len(book.positions) - limit
    if more > 0:
        table.caption = f"+{more} more: Positions (3 or f3)"
        table.caption_justify = "left"
    return table
