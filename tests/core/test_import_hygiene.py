"""core/ must stay importable without the UI: no textual, no rich (DESIGN.md layers)."""

import json
import subprocess
import sys

CORE_MODULES = [
    "core.config", "core.clock", "core.engine", "core.broker.base", "core.broker.sim",
    "core.broker.scenario", "core.broker.ibkr", "core.market.calendar", "core.market.pricing",
    "core.risk.kill_switch", "core.db.session", "core.db.repos",
]


def test_core_does_not_load_textual_or_rich():
    code = (
        "import importlib, json, sys\n"
        f"for m in {CORE_MODULES!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in "
        "('textual', 'rich', 'console', 'screens', 'widgets'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == []
