"""Run `putdesk` as a real process."""

import subprocess
import sys


def putdesk(env: dict[str, str], *args: str, stdin: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "console", *args], env=env, text=True,
                          capture_output=True, input=stdin, timeout=timeout)
