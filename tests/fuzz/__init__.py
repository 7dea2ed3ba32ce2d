"""Property-based fuzzing (hypothesis) of every input PutDesk reads: Barchart CSV rows and
files, scenario files, settings values and command-line arguments. Bad input must give a
named error and never a traceback; good input next to it must come through whole.

Each run draws new examples, so the suites can still find bugs: the kept examples
(`@example`, past findings) always run, then a random budget from one seed.

- The seed is PUTDESK_FUZZ_SEED, or a random one; pytest prints it in its header and
  under every failing fuzz test. The same seed draws the same examples: a failure is
  reproduced with `PUTDESK_FUZZ_SEED=<seed> ./dev test tests/fuzz`.
- The budget is each test's `budget(n)` examples times PUTDESK_FUZZ_BUDGET (1 in CI;
  `./dev fuzz` runs 20 times as many, and keeps what it finds in .hypothesis/fuzz, which
  the next `./dev fuzz` replays first). Turn a finding into an `@example`.
"""

from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase


def _seed() -> int:
    text = os.environ.get("PUTDESK_FUZZ_SEED", "").strip()
    if text:
        return int(text)
    chosen = random.SystemRandom().randrange(2**32)
    # Exported: processes started from this one (xdist workers) draw from the same seed.
    os.environ["PUTDESK_FUZZ_SEED"] = str(chosen)
    return chosen


SEED = _seed()
BUDGET = float(os.environ.get("PUTDESK_FUZZ_BUDGET", "") or 1)
_DB = os.environ.get("PUTDESK_FUZZ_DB", "").strip()


def budget(examples: int) -> int:
    """A test's random examples for this run: its CI budget times PUTDESK_FUZZ_BUDGET."""
    return max(1, round(examples * BUDGET))


#: The base of every fuzz test's settings: random from SEED (applied to every test that
#: uses FUZZ by tests/fuzz/plugin.py), no deadline on a shared CPU.
FUZZ = settings(deadline=None, derandomize=False,
                database=DirectoryBasedExampleDatabase(_DB) if _DB else None,
                print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
