"""The fuzz suites still search: each run draws from a seed (printed), the same seed
draws the same examples (a failure is reproducible), another seed draws others, and
PUTDESK_FUZZ_BUDGET scales how many. Through pytest itself, on a small fuzz module."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]

SAMPLE = '''
import os
from hypothesis import example, given, settings, strategies as st
from tests.fuzz import FUZZ, budget

@settings(FUZZ, max_examples=budget(20))
@given(st.integers(0, 10**12))
@example(7)  # a kept example: every run
def test_draws(n):
    with open(os.environ["DRAWN"], "a") as f:
        f.write(f"{n}\\n")
    assert n != int(os.environ.get("FAIL_ON", "-1"))
'''


def fuzz_run(tmp_path: Path, name: str, **env: str) -> tuple[list[int], str, int]:
    module = tmp_path / "test_sample_fuzz.py"
    module.write_text(SAMPLE)
    drawn = tmp_path / f"{name}.txt"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PUTDESK_FUZZ_")}
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                        "-p", "tests.fuzz.plugin", "--rootdir", str(tmp_path),
                        str(module)],
                       env=clean | {"DRAWN": str(drawn), "PYTHONPATH": str(ROOT)} | env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    numbers = [int(x) for x in drawn.read_text().split()] if drawn.exists() else []
    return numbers, r.stdout + r.stderr, r.returncode


def test_a_seed_reproduces_its_examples_and_another_seed_draws_others(tmp_path):
    first, out, code = fuzz_run(tmp_path, "a", PUTDESK_FUZZ_SEED="1234")
    assert code == 0, out
    assert "fuzz seed 1234, budget x1; reproduce with PUTDESK_FUZZ_SEED=1234" in out
    assert first[0] == 7  # the kept example first
    again, _, _ = fuzz_run(tmp_path, "b", PUTDESK_FUZZ_SEED="1234")
    other, _, _ = fuzz_run(tmp_path, "c", PUTDESK_FUZZ_SEED="98765")
    assert again == first
    assert set(other) - {7} != set(first) - {7}


def test_without_a_seed_each_run_differs_and_prints_the_seed_it_used(tmp_path):
    one, out_one, _ = fuzz_run(tmp_path, "a")
    two, _, _ = fuzz_run(tmp_path, "b")
    assert one != two
    used = re.search(r"reproduce with PUTDESK_FUZZ_SEED=(\d+)", out_one)
    assert used
    replay, _, _ = fuzz_run(tmp_path, "c", PUTDESK_FUZZ_SEED=used.group(1))
    assert replay == one


def test_a_failure_names_its_seed_and_the_budget_scales(tmp_path):
    _, out, code = fuzz_run(tmp_path, "a", PUTDESK_FUZZ_SEED="5", FAIL_ON="7")
    assert code == 1
    assert "fuzz seed 5, budget x1; reproduce with PUTDESK_FUZZ_SEED=5" in out.split(
        "short test summary")[0]
    small, _, _ = fuzz_run(tmp_path, "b", PUTDESK_FUZZ_SEED="5")
    large, _, _ = fuzz_run(tmp_path, "c", PUTDESK_FUZZ_SEED="5", PUTDESK_FUZZ_BUDGET="4")
    assert len(set(large)) > 2 * len(set(small))
