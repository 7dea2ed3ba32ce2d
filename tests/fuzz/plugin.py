"""pytest plugin (loaded by tests/conftest.py): every hypothesis test of a module that uses
tests.fuzz.FUZZ draws from tests.fuzz.SEED; the seed is printed in the header and with
every failing fuzz test, so the failure can be reproduced."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from hypothesis import seed

from tests import fuzz


def _reproduce() -> str:
    return (f"fuzz seed {fuzz.SEED}, budget x{fuzz.BUDGET:g}; reproduce with "
            f"PUTDESK_FUZZ_SEED={fuzz.SEED}")


def _is_fuzz(item: pytest.Item) -> bool:
    module = getattr(item, "module", None)
    return (getattr(module, "FUZZ", None) is fuzz.FUZZ
            and getattr(getattr(item, "obj", None), "is_hypothesis_test", False))


def pytest_report_header(config: pytest.Config) -> str:
    return _reproduce()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_fuzz(item):
            seed(fuzz.SEED)(item.obj)  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and _is_fuzz(item):
        report.sections.append(("fuzz", _reproduce()))
