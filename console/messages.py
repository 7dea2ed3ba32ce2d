"""App-level messages: the engine's worker posts them, App handlers own the state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from core.engine import EngineState


@dataclass
class EngineUpdated(Message):
    """The engine published a new state snapshot. A burst collapses to the newest."""

    state: EngineState

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EngineUpdated)


@dataclass
class EngineFailed(Message):
    """The engine could not start; `reason` is for the operator."""

    reason: str
