"""One way for every bench to report: the figure beside the budget it targets.

Each bench prints its own lines; when run by `./dev bench` (python -m bench) the
results are also appended as JSON lines to $BENCH_RESULTS, and the runner prints one
table of them all."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.config import Settings


@dataclass(frozen=True)
class Result:
    bench: str
    figure: str
    goal: str
    met: bool | None  # None: reported for information, no budget

    @property
    def verdict(self) -> str:
        return "info" if self.met is None else "MET" if self.met else "MISSED"


def report(*results: Result) -> None:
    for r in results:
        print(f"  {r.bench}: {r.figure}  (goal {r.goal}: {r.verdict})", flush=True)
    target = os.environ.get("BENCH_RESULTS")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            for r in results:
                out.write(json.dumps(asdict(r)) + "\n")


def production_settings(**env: str) -> Settings:
    """Settings as an operator runs them (INFO log to a file, redaction filter on), on a
    throwaway database and log, with logging set up exactly as the CLI and console do."""
    from core.config import load_settings
    from core.logs import setup_logging

    tmp = Path(tempfile.mkdtemp(prefix="putdesk-bench-"))
    settings = load_settings({"PUTDESK_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                              "PUTDESK_LOG_FILE": str(tmp / "putdesk.log"), **env})
    setup_logging(settings)
    return settings


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
