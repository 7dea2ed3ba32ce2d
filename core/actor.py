"""Who did it, from where: recorded with every halt, resume and approval."""

from __future__ import annotations

import getpass
import os
import socket
import sys


def whoami(via: str) -> str:
    """e.g. 'cli alice@desk pid 4242 tty /dev/pts/3 from 10.0.0.5' (SSH client shown if any)."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    parts = [via, f"{user}@{socket.gethostname()}", f"pid {os.getpid()}"]
    try:
        if sys.stdin is not None and sys.stdin.isatty():
            parts.append(f"tty {os.ttyname(sys.stdin.fileno())}")
    except (OSError, ValueError):
        pass
    ssh = os.environ.get("SSH_CLIENT", "").split()
    if ssh:
        parts.append(f"from {ssh[0]}")
    return " ".join(parts)
