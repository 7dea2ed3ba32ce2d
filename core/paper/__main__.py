"""`python -m core.paper`: the paper gateway in the background, started by the first
PutDesk process of a data directory that finds none (see gateway.ensure_gateway). It
logs to the PutDesk log; `putdesk paper` is the same gateway in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from core.config import ConfigError, load_settings
    from core.logs import setup_logging
    from core.paper.gateway import GatewayError, open_gateway, run_gateway
    from core.paper.state import WorldStateError

    parser = argparse.ArgumentParser(prog="python -m core.paper")
    parser.add_argument("--scenario", type=Path, default=None)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        setup_logging(settings, stderr_level=None)
        gateway = open_gateway(settings, scenario=args.scenario, speed=args.speed,
                               port=args.port)
        asyncio.run(run_gateway(gateway))
    except (ConfigError, GatewayError, WorldStateError) as exc:
        print(f"paper gateway: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # ScenarioError and anything else: say it, exit non-zero
        print(f"paper gateway: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
