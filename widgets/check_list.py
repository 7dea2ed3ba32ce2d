"""CheckList: a governor decision's checks, in chain order, colour-coded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import events
from textual.widgets import DataTable

from widgets.palette import BOLD_GREEN, ON_GREEN, ON_RED, ON_YELLOW

if TYPE_CHECKING:
    from core.models import CheckResult, RiskDecision

STATUS_STYLE = {"pass": BOLD_GREEN, "warn": ON_YELLOW,
                "fail": ON_RED}
STATUS_LABEL = {"pass": " PASS ", "warn": " WARN ", "fail": " FAIL "}


def status_text(status: str) -> Text:
    return Text(STATUS_LABEL[status], style=STATUS_STYLE[status])


def decision_text(decision: RiskDecision) -> Text:
    if not decision.approved:
        return Text(" REJECTED ", style=STATUS_STYLE["fail"])
    if decision.warnings:
        return Text(" APPROVED ⚠ ", style=STATUS_STYLE["warn"])
    return Text(" APPROVED ", style=ON_GREEN)


class CheckList(DataTable[Any]):
    """One row per check: number, name, status, reason (the first failure is marked)."""

    DEFAULT_CSS = """
    CheckList { height: auto; max-height: 20; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._decision: RiskDecision | None = None
        self._reason_width = 0

    def on_mount(self) -> None:
        self._columns(80)

    def on_resize(self, event: events.Resize) -> None:
        # The reason folds within the screen: on 80 columns it is read, not cut off.
        width = max(30, min(100, event.size.width - 40))
        if width != self._reason_width:
            self._columns(width)
            self.show(self._decision)

    def _columns(self, reason_width: int) -> None:
        self._reason_width = reason_width
        self.clear(columns=True)
        self.add_column("#", width=2, key="n")
        self.add_column("Check", width=22, key="name")
        self.add_column("Status", width=6, key="status")
        self.add_column("Reason", width=reason_width, key="reason")

    def show(self, decision: RiskDecision | None) -> None:
        self._decision = decision
        self.clear()
        if decision is None:
            return
        first = decision.rejected_by
        for n, check in enumerate(decision.checks, start=1):
            self.add_row(str(n), self._label(check, check is first), status_text(check.status),
                         Text(check.reason, overflow="fold"), key=check.name,
                         height=None)

    @staticmethod
    def _label(check: CheckResult, decided: bool) -> Text:
        return Text(("▶ " if decided else "  ") + check.name.replace("_", " "),
                    style="bold" if decided else "")
