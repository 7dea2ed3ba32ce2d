"""A test-only TWS API peer: ib_async talks to it over a real socket, the market
simulator answers behind it (see server.py)."""

from .server import TwsPeer

__all__ = ["TwsPeer"]
