"""Positions: short puts with the trader's numbers (DTE, delta, P&L, premium kept, strike
distance, mark, theta $/day, entry, IV, the broker's margin, drop from entry) and alert
badges, most severe first. Live updates redraw only the visible rows that changed
(widgets.live_table), so the cursor and the scroll position stay where the operator
left them and the halt key never waits behind a frame."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from core.fmt import plural
from screens.base import DeskModal, DeskScreen, busy
from screens.confirm import ConfirmScreen
from widgets.format import DASH, contract_label, greek, money, ny_time, pct, pnl, price
from widgets.live_table import LiveTable
from widgets.palette import BOLD_RED, GREEN, ON_RED, ON_YELLOW, RED, YELLOW
from widgets.quiet import QuietStatic

if TYPE_CHECKING:
    from core.engine import EngineState
    from core.models import PositionView

BADGE = {"CRITICAL": Text("CRIT", style=ON_RED),
         "WARNING": Text("WARN", style=ON_YELLOW)}
#: The figures that decide an action come first: 80 columns show them up to the mark
#: (exit rules read P&L, premium kept, delta and DTE; the strike's distance says how much
#: room is left). The rest follow at wider widths; Alerts takes what is left, and the
#: detail (enter) shows every figure and the whole alert text.
COLUMNS = (("badge", "", 4), ("contract", "Contract", 19), ("qty", "Qty", 3),
           ("dte", "DTE", 3), ("delta", "Δ", 5), ("pnl", "P&L", 8), ("kept", "Kept", 5),
           ("otm", "OTM", 5), ("mark", "Mark", 6), ("theta", "Θ/day", 7),
           ("entry", "Entry", 5), ("iv", "IV", 5), ("margin", "Margin", 8),
           ("drop", "Drop", 5), ("und", "Und", 8), ("alerts", "Alerts", 20))


def position_label(v: PositionView) -> str:
    """The contract as every console table names it (core.fmt.contract_label)."""
    c = v.contract
    return contract_label(c.symbol, c.expiration, c.strike, c.right)


def mark_text(v: PositionView) -> str:
    """The mark, "L" after it when it is the last trade rather than the bid/ask mid."""
    return price(v.mark) + ("L" if v.mark_source == "last" else "")


def theta_text(v: PositionView) -> str:
    """Dollars a day for the whole position; cents while it is small."""
    t = v.theta_per_day
    return money(t, cents=t is not None and abs(t) < 100)


def cells(v: PositionView) -> tuple[Any, ...]:
    loss = v.loss_multiple
    otm = v.otm_pct
    return (
        BADGE.get(v.worst or "", ""),
        position_label(v),
        str(v.quantity),
        str(v.dte),
        greek(v.delta),
        Text(pnl(v.campaign_pnl), style=RED if (v.campaign_pnl or 0) < 0 else GREEN),
        Text(pct(None if loss is None else -loss, 0, signed=True),
             style="" if loss is None or loss < 1 else BOLD_RED),
        Text(pct(otm), style=BOLD_RED if otm is not None and otm < 0 else ""),
        mark_text(v),
        theta_text(v),
        price(v.entry_price),
        pct(v.iv),
        money(v.margin),
        Text(pct(v.drop_pct), style=RED if (v.drop_pct or 0) > 0.05 else ""),
        price(v.underlying_price),
        alerts_text(v),
    )


def alerts_text(v: PositionView) -> Text:
    """The exit state first (EXIT STUCK is the one a trader must act on), then alerts."""
    t = Text(overflow="ellipsis", no_wrap=True)
    if v.exit_state:
        t.append(v.exit_state, style=BOLD_RED if v.exit_state.startswith("EXIT STUCK")
                 else YELLOW)
        if v.alerts:
            t.append(" · ")
    t.append(" · ".join(a.message for a in v.alerts))
    return t


class PositionsScreen(DeskScreen):
    SCREEN_NAME = "Positions"
    HELP_NOTE = ("Short puts, most severe first: DTE, delta, P&L, premium kept, how far the "
                 "strike is below the underlying (OTM), the mark (bid/ask mid; L: last trade), "
                 "theta in $/day, entry premium, IV, the broker's margin for the position, "
                 "drop from entry, rolls and alerts. enter opens every figure, the entry "
                 "snapshot, roll lineage and alert history.")
    ORDER_ACTIONS = frozenset({"close_position", "exit_all"})
    DEFAULT_CSS = """
    PositionsScreen #summary { height: auto; padding: 0 1; }
    PositionsScreen #positions { height: 1fr; }
    """
    BINDINGS = [
        Binding("r", "refresh_positions", "Refresh", id="positions-refresh",
                tooltip="Read positions, quotes and greeks from the broker now"),
        Binding("x", "close_position", "Close", id="positions-close",
                tooltip="Close the highlighted position at the market's quote (asks first)"),
        Binding("X", "exit_all", "Exit all", id="positions-exit-all",
                tooltip="Emergency: close every short put (asks first)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.views: dict[str, PositionView] = {}

    def compose_body(self) -> ComposeResult:
        yield QuietStatic("", id="summary")
        table: LiveTable[PositionView] = LiveTable(COLUMNS, cells, fixed_columns=2,
                                                        id="positions")
        table.border_title = "Short puts — most severe first · enter: detail"
        yield table

    def show_engine_state(self, state: EngineState) -> None:
        self.show_positions(state.positions, state)

    def show_positions(self, views: tuple[PositionView, ...],
                       state: EngineState | None = None) -> None:
        """Rows already shown keep their place; new ones are added in the engine's order
        (severity first) and closed ones removed. Only changed visible rows redraw."""
        self.views = {v.position_id: v for v in views}
        self.query_one("#positions", LiveTable).set_rows(self.views.items())
        crit = sum(1 for v in views if v.worst == "CRITICAL")
        warn = sum(1 for v in views if v.worst == "WARNING")
        total = sum(v.pnl or 0 for v in views)
        checked = state.positions_checked_at if state is not None else None
        summary = Text()
        # The badges first: on a narrow terminal the line wraps after what matters.
        for count, label, style in ((crit, "CRITICAL", ON_RED), (warn, "WARNING", ON_YELLOW)):
            if count:
                summary.append(f" {count} {label} ", style=style)
                summary.append(" ")
        if not views:
            summary.append("No positions: no short puts in the account." if checked
                           else "Positions not read yet…", style="bold")
        else:
            summary.append(f"{plural(len(views), 'put')} · P&L {pnl(total)}")
            theta = [v.theta_per_day for v in views]
            if all(t is not None for t in theta):
                summary.append(f" · theta {money(sum(t or 0 for t in theta), signed=True)}/day")
            margins = [v.margin for v in views]
            summary.append(" · margin " + (money(sum(m or 0 for m in margins))
                                          if all(m is not None for m in margins)
                                          else f"{DASH} (not all known: enter on a row)"))
        summary.append(f" · {ny_time(checked)}", style="dim")  # when read: fits 80 columns
        self.query_one("#summary", QuietStatic).show(summary)
        self._alerts_tooltip()  # the highlighted row's alerts may have changed

    def _current(self) -> PositionView | None:
        key = self.query_one("#positions", LiveTable).cursor_key
        return None if key is None else self.views.get(key)

    @on(LiveTable.RowHighlighted, "#positions")
    def _alerts_tooltip(self) -> None:
        """The highlighted row's whole alert text: the column may cut it."""
        view = self._current()
        text = alerts_text(view).plain if view is not None else ""
        self.query_one("#positions", LiveTable).tooltip = text or None

    @on(LiveTable.RowSelected, "#positions")
    def _detail(self) -> None:
        view = self._current()
        if view is not None:
            self.app.push_screen(PositionDetail(view))

    @work(group="positions-refresh", exclusive=True, exit_on_error=False)
    async def action_refresh_positions(self) -> None:
        engine = self.desk.engine
        if engine is not None:
            async with busy(self.query_one("#positions", LiveTable)):
                await engine.monitor_cycle(exits=False)

    def action_close_position(self) -> None:
        if self.refuse_order():
            return
        view = self._current()
        engine = self.desk.engine
        if view is None or engine is None:
            return

        def answered(confirmed: bool | None) -> None:
            if not confirmed:
                return

            async def run() -> None:
                result = await engine.exits.close(view, "operator close", self.desk.who())
                self.app.notify(f"{view.position_id}: {result.outcome} — {result.reason}",
                                title="Close", markup=False,
                                severity="information" if result.success else "warning")
                await engine.monitor_cycle(exits=False)

            self.app.run_worker(run(), group="execution", exit_on_error=False)

        self.app.push_screen(ConfirmScreen(
            "Close this position?",
            f"BUY {view.contracts} {view.position_id} to close, at the live quote "
            f"(P&L now {money(view.pnl)}).", confirm_label="Close"), answered)

    def action_exit_all(self) -> None:
        if self.refuse_order():
            return
        engine = self.desk.engine
        if engine is None or not self.views:
            return

        def answered(confirmed: bool | None) -> None:
            if not confirmed:
                return

            async def run() -> None:
                results = await engine.exits.exit_all(self.desk.who())
                filled = sum(1 for _v, r in results if r.filled)
                self.app.notify(f"Exit all: {filled} of {len(results)} closed",
                                title="Exit all", markup=False,
                                severity="information" if filled == len(results) else "error")
                await engine.monitor_cycle(exits=False)

            self.app.run_worker(run(), group="execution", exit_on_error=False)

        self.app.push_screen(ConfirmScreen(
            "EXIT ALL positions?",
            f"Close all {len(self.views)} short puts now at the live quotes. This cannot be "
            "undone.", confirm_label="Exit all"), answered)


class PositionDetail(DeskModal[None]):
    """The entry snapshot, the trade and its roll lineage, and the alert history."""

    SCREEN_NAME = "Position detail"
    HELP_NOTE = ("From Positions: enter on a row. The entry snapshot, roll lineage and alert "
                 "history.")

    DEFAULT_CSS = """
    PositionDetail { align: center middle; }
    PositionDetail > Vertical { width: 100; max-width: 100%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q", "dismiss", "Close", id="position-detail-close")]

    def __init__(self, view: PositionView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._now(), id="now")
            yield Static("Loading the entry and the alert history…", id="history")

    def _now(self) -> Text:
        v = self.view
        t = Text()
        t.append(f"{v.position_id}", style="bold")
        kept = v.captured
        share = ("premium not priced" if kept is None
                 else f"{kept:.0%} of the premium kept" if kept >= 0
                 else f"loss {-kept:.2f}x the premium")
        t.append(f"  x{v.contracts} · {v.dte} DTE · rolls {v.roll_count} · P&L {pnl(v.pnl)}"
                 f" · {share}\n")
        source = {"mid": "bid/ask mid", "last": "last trade"}.get(v.mark_source, "no quote")
        t.append(f"Mark {price(v.mark)} ({source}; bid {price(v.bid)}, ask {price(v.ask)}) · "
                 f"entry {price(v.entry_price)}/sh = {money(v.entry_per_contract)}/ct\n")
        t.append(f"Underlying {price(v.underlying_price)} · strike {v.contract.strike:g} is "
                 f"{pct(v.otm_pct)} below it · drop since entry {pct(v.drop_pct)}\n")
        t.append(f"Δ {greek(v.delta)} · theta {theta_text(v)}/day for the position "
                 f"({greek(v.theta, 3)}/sh) · IV {pct(v.iv)}\n")
        t.append(f"Margin {money(v.margin)} ")
        t.append(f"({v.margin_note or 'not read'})\n",
                 style="dim" if v.margin is not None else YELLOW)
        if v.exit_state:
            t.append(f"{v.exit_state}\n", style=BOLD_RED)
        for a in v.alerts:
            t.append(f"{a.severity} {a.message}\n",
                     style=BOLD_RED if a.severity == "CRITICAL" else YELLOW)
        if v.campaign is not None:
            c = v.campaign
            t.append(f"\nCampaign since the first sale: original premium "
                     f"{price(c.original_premium)} · realised {pnl(c.realized)} · "
                     f"commissions {money(c.commissions, cents=True)} · campaign P&L "
                     f"{pnl(v.campaign_pnl)}\n", style="bold")
            for leg in c.legs:
                bought = ("open" if leg.buyback is None
                          else f"bought back {price(leg.buyback)}")
                t.append(f"  {leg.expiration} {leg.strike:g}P x{leg.contracts}: sold "
                         f"{price(leg.premium)}, {bought}"
                         + (f" ({pnl(leg.realized_pnl)})" if leg.realized_pnl is not None
                            else "") + "\n")
        return t

    def on_mount(self) -> None:
        self.load()

    @work(group="position-detail", exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        engine = getattr(self.app, "engine", None)
        v = self.view
        if engine is None:
            return
        trade = await asyncio.to_thread(engine.trades.get, v.trade_id) if v.trade_id else None
        snap = (await asyncio.to_thread(engine.trades.entry_snapshot, v.trade_id)
                if v.trade_id else None)
        events = await asyncio.to_thread(engine.audit.list, None, ["alert", "exit",
                                                                   "roll_proposed"], 200)
        mine = [e for e in events if e.symbol == v.symbol][:12]
        t = Text()
        if trade is None:
            t.append("No PutDesk trade for this position (opened outside PutDesk).\n",
                     style=YELLOW)
        else:
            # The lineage is the campaign's legs above; database ids mean nothing here.
            t.append(f"Opened by PutDesk {ny_time(trade.entry_time, with_date=True)}"
                     + (" (a roll)" if trade.rolled_from_trade_id else "") + "\n")
        if snap is not None:
            t.append(f"At entry: underlying {price(snap.underlying_price)} · delta "
                     f"{greek(snap.delta)} · IV rank {pct(snap.iv_rank)} · VIX "
                     f"{price(snap.vix)} · earnings {snap.earnings_date or DASH}\n")
        t.append("\nAlert history\n", style="bold")
        for e in mine:
            t.append(f"{ny_time(e.ts, with_date=True)}  {e.severity:<8} {e.message}\n")
        if not mine:
            t.append("none\n", style="dim")
        self.query_one("#history", Static).update(t)
