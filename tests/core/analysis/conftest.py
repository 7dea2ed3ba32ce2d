"""Each CLI test gets its own database and log file, as a fresh operator machine would."""

import os
from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return os.environ | {
        "PUTDESK_DATABASE_URL": f"sqlite:///{tmp_path}/putdesk.db",
        "PUTDESK_LOG_FILE": str(tmp_path / "putdesk.log"),
    }
