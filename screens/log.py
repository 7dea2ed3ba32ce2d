"""Log: the audit trail — every decision, order, fill, alert, halt and resume, with who —
newest first, filtered by kind, severity and text."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Select, Static

from screens.base import DeskScreen
from widgets.format import ny_time
from widgets.palette import BOLD_RED, ON_RED, YELLOW

if TYPE_CHECKING:
    from core.db.tables import AuditEvent
    from core.engine import EngineState

KINDS = ["halt", "resume", "risk_decision", "staged", "order_filled", "order_rejected",
         "order_cancelled", "order_dry_run", "exit", "exit_all", "alert", "roll_proposed",
         "roll_approved", "roll_rejected", "roll_result", "assignment", "post_trade_margin",
         "margin_rejection", "whatif_fallback", "reconcile", "scan"]
SEVERITY_STYLE = {"WARNING": YELLOW, "CRITICAL": BOLD_RED, "EMERGENCY": ON_RED}
SEVERITIES = ["INFO", "WARNING", "CRITICAL", "EMERGENCY"]


class LogScreen(DeskScreen):
    SCREEN_NAME = "Log"
    HELP_NOTE = ("The audit trail, newest first: scans, governor decisions, staging, orders and "
                 "fills, alerts, halts and resumes with who. tab reaches the kind, severity and "
                 "text filters; the highlighted event's details show below the table.")
    DEFAULT_CSS = """
    LogScreen #filters { height: 3; padding: 0 1; }
    LogScreen #filters Select { width: 26; }
    LogScreen #filters Input { width: 1fr; }
    LogScreen #events { height: 1fr; }
    LogScreen #event-detail { height: auto; max-height: 8; padding: 0 1;
        border-top: solid $primary; }
    """
    BINDINGS = [Binding("r", "reload", "Reload", id="log-reload")]

    def __init__(self) -> None:
        super().__init__()
        self.events: list[AuditEvent] = []
        self._seen: tuple[object, ...] = ()

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="filters"):
            yield Select([(k, k) for k in KINDS], prompt="every kind", id="kind")
            yield Select([(f"{s} and above", s) for s in SEVERITIES], prompt="every severity",
                         id="severity")
            yield Input(placeholder="text or symbol filter", id="text")
        table: DataTable[Any] = DataTable(id="events", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="event-detail")

    def on_mount(self) -> None:
        table = self.query_one("#events", DataTable)
        # The message before who: at 80 columns it is the part worth seeing.
        for key, label, width in (("ts", "Time (ET)", 15), ("kind", "Kind", 17),
                                  ("sev", "Severity", 9), ("sym", "Symbol", 6),
                                  ("msg", "Message", 90), ("who", "Who", 24)):
            table.add_column(label, width=width, key=key)
        table.focus()
        super().on_mount()
        self.action_reload()

    def show_engine_state(self, state: EngineState) -> None:
        # New events arrive with the state's messages, and with the orders, trades and
        # rolls of every process (the engine's change feed): reload when one moves.
        seen = (state.last_message, state.orders_version, state.trades_version,
                state.rolls_version)
        if seen != self._seen:
            self._seen = seen
            self.action_reload()

    @on(Select.Changed)
    @on(Input.Changed, "#text")
    def _filters_changed(self) -> None:
        self.action_reload()

    @work(group="log-load", exclusive=True, exit_on_error=False)
    async def action_reload(self) -> None:
        engine = self.desk.engine
        if engine is None:
            return
        kind = self.query_one("#kind", Select).value
        kinds = [str(kind)] if kind is not Select.NULL else None
        events = await asyncio.to_thread(engine.audit.list, None, kinds, 1000)
        severity = self.query_one("#severity", Select).value
        if severity is not Select.NULL:
            floor = SEVERITIES.index(str(severity))
            events = [e for e in events if e.severity in SEVERITIES
                      and SEVERITIES.index(e.severity) >= floor]
        text = self.query_one("#text", Input).value.strip().lower()
        if text:
            events = [e for e in events if text in e.message.lower()
                      or text == (e.symbol or "").lower() or text in e.actor.lower()]
        self.events = events[:500]
        table = self.query_one("#events", DataTable)
        table.clear()
        for e in self.events:
            table.add_row(ny_time(e.ts, with_date=True)[4:], e.kind,
                          Text(e.severity, style=SEVERITY_STYLE.get(e.severity, "")),
                          e.symbol or "", Text(e.message, overflow="ellipsis", no_wrap=True),
                          Text(e.actor, overflow="ellipsis", no_wrap=True), key=str(e.id))
        table.border_title = f"Audit trail — {len(self.events)} events, newest first"
        self._detail()

    @on(DataTable.RowHighlighted, "#events")
    def _detail(self) -> None:
        table = self.query_one("#events", DataTable)
        detail = self.query_one("#event-detail", Static)
        if not self.events or table.cursor_row >= len(self.events):
            detail.update(Text("No events match.", style="dim"))
            return
        e = self.events[table.cursor_row]
        t = Text()
        t.append(f"{e.kind} · {e.severity} · {e.actor} · {e.source}\n", style="bold")
        t.append(e.message + "\n")
        if e.data:
            t.append(json.dumps(json.loads(e.data), default=str)[:600], style="dim")
        detail.update(t)
