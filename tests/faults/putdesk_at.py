"""`putdesk` in its own process with the engine's clock starting at the TWS peer world's
time (PUTDESK_TEST_CLOCK_START): the order-life tests run the real CLI commands against
a peer whose simulated market is open, while this machine's own clock may say Sunday.
Everything else is the product as an operator runs it (settings from the environment)."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from core.clock import ShiftedClock
from core.engine import Engine

START = datetime.fromisoformat(os.environ["PUTDESK_TEST_CLOCK_START"])
_build = Engine.build.__func__  # type: ignore[attr-defined]


def _at_world_time(cls: type[Engine], settings: Any, *, scenario: Path | None = None,
                   clock: Any = None, db: Any = None, **more: Any) -> Engine:
    engine: Engine = _build(cls, settings, scenario=scenario, clock=clock or ShiftedClock(START),
                            db=db, **more)
    return engine


Engine.build = classmethod(_at_world_time)  # type: ignore[assignment, method-assign]

if __name__ == "__main__":
    from console.cli import main

    sys.argv = ["putdesk", *sys.argv[1:]]
    main()
